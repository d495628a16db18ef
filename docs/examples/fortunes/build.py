"""Builds the fortunes example (docs/corpus.md) from Debian's ``fortunes`` package: no download.

Reads every category file of ``/usr/share/games/fortunes/`` (``.ci/setup.d/50-fortunes.sh``
installs them; records are separated by lines holding ``%``) and writes, next to this script:

- ``labelled.jsonl``: ``{"label", "text"}`` for ``--per-class`` fortunes (default 400) of each of
  ``--classes`` (default computers, politics, science, songs-poems), drawn with a fixed seed from
  the fortunes of at least ``--min-words`` words whose text occurs once in the whole package.
  ``docs/examples/fortunes-finetune.yaml`` splits them 50/10/40: 200 train, 40 val and 160 test
  rows per class;
- ``corpus.jsonl``: ``{"category", "id", "text"}``, every other fortune of every category (also the
  four classes' unlabelled rest), for ``docs/examples/fortunes-pretrain.yaml``. A fortune is left out
  when it is a labelled one (same text once normalised) or shares a run of ``LEAK_NGRAM`` words
  with one, so no held-out row, not even a near-copy from another category, is seen in
  pretraining. Duplicates among the corpus itself stay: the pipeline's filters are there for them;
- ``build.json``: the counts, the options and the SHA-256 of both files.

Deterministic: category files in sorted order, the draw seeded by ``--seed`` and the category
name, JSON written with sorted keys: ``python docs/examples/fortunes/build.py`` gives the same
bytes every time on the same package version (``fortunes`` 1:1.99.1-7.3 in Debian 12).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
import unicodedata
from pathlib import Path

FORTUNES = Path("/usr/share/games/fortunes")
CLASSES = ("computers", "politics", "science", "songs-poems")
LEAK_NGRAM = 8          # a shared run of 8 words is a copy, not a common phrase
_OVERSTRIKE = re.compile(".\x08")       # "_\bX" underlines and "X\bX" bolds X on a teletype
_SEPARATOR = re.compile(r"^%[ \t]*$", re.MULTILINE)


def categories(folder: Path) -> list[str]:
    """Category files of a fortunes folder, sorted: regular files without the ``.dat``/``.u8`` index names."""
    return sorted(p.name for p in folder.iterdir()
                  if p.is_file() and not p.is_symlink() and p.suffix not in (".dat", ".u8"))


def read_fortunes(path: Path) -> list[str]:
    """The fortunes of one file, in file order: overstrikes removed, line ends stripped, empty ones dropped."""
    text = _OVERSTRIKE.sub("", path.read_bytes().decode("utf-8", errors="replace"))
    records = ("\n".join(line.rstrip() for line in chunk.strip("\n").splitlines()).strip()
               for chunk in _SEPARATOR.split(text))
    return [r for r in records if r]


def key(text: str) -> str:
    """The text as the exact-duplicate check sees it, near enough: NFKC, lower case, digits as 0, one space."""
    folded = re.sub(r"\d", "0", unicodedata.normalize("NFKC", text).lower())
    return " ".join(folded.split())


def _ngrams(text: str, n: int = LEAK_NGRAM) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", key(text))
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def draw_labelled(by_category: dict[str, list[str]], classes, per_class: int, min_words: int,
                  seed: int) -> dict[str, list[str]]:
    """``per_class`` fortunes of each class, seeded per class; only texts that occur once in the package."""
    seen: dict[str, int] = {}
    for docs in by_category.values():
        for doc in docs:
            seen[key(doc)] = seen.get(key(doc), 0) + 1
    out = {}
    for name in classes:
        pool = [d for d in by_category[name] if seen[key(d)] == 1 and len(d.split()) >= min_words]
        if len(pool) < per_class:
            raise SystemExit(f"--per-class {per_class}: category {name!r} has only {len(pool)} usable fortunes "
                             f"(unique, >= {min_words} words); lower --per-class or choose another class")
        picked = random.Random(f"{seed}:{name}").sample(range(len(pool)), per_class)
        out[name] = [pool[i] for i in sorted(picked)]           # file order
    return out


def pretraining_corpus(by_category: dict[str, list[str]], labelled: dict[str, list[str]]):
    """(category, index, text) of every fortune that is not, nor copies from, a labelled one; and the counts."""
    held_keys = {key(d) for docs in labelled.values() for d in docs}
    held_ngrams = set().union(*(_ngrams(d) for docs in labelled.values() for d in docs))
    rows, excluded = [], {"labelled": 0, "shares_8_words_with_labelled": 0}
    for name, docs in by_category.items():
        for i, doc in enumerate(docs, start=1):
            if key(doc) in held_keys:
                excluded["labelled"] += 1
            elif not _ngrams(doc).isdisjoint(held_ngrams):
                excluded["shares_8_words_with_labelled"] += 1
            else:
                rows.append((name, i, doc))
    return rows, excluded


def _write_jsonl(path: Path, records) -> str:
    data = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records).encode()
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def build(folder: Path, out: Path, classes=CLASSES, per_class: int = 400, min_words: int = 4, seed: int = 0) -> dict:
    """Write labelled.jsonl, corpus.jsonl and build.json under ``out``; return build.json's content."""
    names = categories(folder)
    missing = [c for c in classes if c not in names]
    if missing:
        raise SystemExit(f"--classes: {', '.join(missing)} not in {folder} (found {', '.join(names) or 'nothing'}); "
                         "run .ci/setup.d/50-fortunes.sh, or choose among the found categories")
    by_category = {name: read_fortunes(folder / name) for name in names}
    labelled = draw_labelled(by_category, classes, per_class, min_words, seed)
    corpus, excluded = pretraining_corpus(by_category, labelled)
    out.mkdir(parents=True, exist_ok=True)
    info = {
        "source": str(folder), "options": {"classes": list(classes), "per_class": per_class,
                                           "min_words": min_words, "seed": seed},
        "fortunes": sum(map(len, by_category.values())), "categories": len(names),
        "labelled": {"rows": per_class * len(classes), "sha256": _write_jsonl(
            out / "labelled.jsonl", ({"label": c, "text": t} for c in classes for t in labelled[c]))},
        "corpus": {"rows": len(corpus), "excluded": excluded, "sha256": _write_jsonl(
            out / "corpus.jsonl", ({"category": c, "id": f"{c}:{i}", "text": t} for c, i, t in corpus))},
    }
    (out / "build.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return info


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fortunes", type=Path, default=FORTUNES, help=f"category files (default {FORTUNES})")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent, help="output folder (default: this one)")
    ap.add_argument("--classes", default=",".join(CLASSES), help="labelled categories, comma-separated")
    ap.add_argument("--per-class", type=int, default=400)
    ap.add_argument("--min-words", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if not args.fortunes.is_dir():
        raise SystemExit(f"--fortunes: {args.fortunes} is not a folder; install Debian's fortunes package "
                         "(bash .ci/setup.d/50-fortunes.sh)")
    info = build(args.fortunes, args.out, tuple(args.classes.split(",")), args.per_class, args.min_words, args.seed)
    print(f"{info['fortunes']} fortunes in {info['categories']} categories -> {args.out}/labelled.jsonl "
          f"({info['labelled']['rows']} rows), {args.out}/corpus.jsonl ({info['corpus']['rows']} rows; "
          f"left out: {info['corpus']['excluded']})")


if __name__ == "__main__":
    main(sys.argv[1:])
