"""Benchmark: does pretraining on unlabelled text help a small labelled set? (issue 17)

    PYTHONPATH=. nice -n 19 .venv/bin/python bench/pretrain_finetune.py [--per-class 200] [--pretrain-epochs 6]

The corpus is Debian's ``fortunes`` package (``/usr/share/games/fortunes/``, records separated by
lines holding ``%``; nothing is downloaded). Labels are the fortune files of ``--classes``; for
each class ``--per-class`` + ``--test-per-class`` records make the labelled set, which dcpipe splits
into test (``--test-per-class`` a class on average), val (10%) and train (the rest: with the
defaults 680 train, 120 val, 400 test). The pretraining corpus is every fortune file's records
except the labelled set's (so no test text is seen in pretraining, and no fine-tuning text
either). Three runs, each a real LocalCluster prepare and a real ``horovodrun -np 2``:

1. ``causal_lm`` pretraining of ``lm_transformer`` on the packed corpus (``--length`` tokens);
2. fine-tuning (``objective: classify``, ``init_from`` the run of 1) on the labelled set encoded
   with the corpus version's ``tokenizer.json``;
3. the same classifier from scratch (no ``init_from``), same data, epochs and seed.

Prints the pretraining perplexity and both held-out accuracies as a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from datetime import datetime, timezone
from pathlib import Path

from pipeline import run
from pipeline.config import JobConfig

FORTUNES = Path("/usr/share/games/fortunes")


def records(name: str) -> list[str]:
    """One fortune file's records, each on one line."""
    text = (FORTUNES / name).read_text(encoding="utf-8", errors="replace")
    return [" ".join(r.split()) for r in text.split("\n%\n") if r.strip() and r.strip() != "%"]


def write_sets(folder: Path, classes: list[str], per_class: int, test_per_class: int, seed: int = 0) -> dict:
    """corpus.txt (unlabelled, the labelled set's records left out) and labelled.tsv; counts."""
    rng = random.Random(seed)
    labelled, held_out = [], set()
    for label in classes:
        recs = sorted(set(records(label)))
        rng.shuffle(recs)
        picked = recs[:per_class + test_per_class]
        held_out.update(picked)
        labelled += [f"{label}\t{r}" for r in picked]
    corpus = [r for f in sorted(p.name for p in FORTUNES.iterdir() if "." not in p.name and p.is_file())
              for r in records(f) if r not in held_out]
    (folder / "corpus.txt").write_text("\n".join(corpus) + "\n")
    (folder / "labelled.tsv").write_text("\n".join(labelled) + "\n")
    return {"corpus_records": len(corpus), "labelled_records": len(labelled)}


def corpus_config(folder: Path, args) -> JobConfig:
    return JobConfig.model_validate({
        "dataset": {"name": "fortunes"}, "seed": args.seed,
        "source": {"kind": "text", "path": str(folder / "corpus.txt")},
        "clean": {"near_duplicates": {"threshold": 0.8, "num_perm": 128, "ngram": 5}, "quality": {"min_words": 3}},
        "features": {"groups": [{"kind": "packed", "name": "tokens", "columns": ["text"], "length": args.length,
                                 "vocab_size": args.vocab}]},
        "augment": {"copies": 0}, "store": {"chunk_rows": 256},
        "cluster": {"workers": 2, "dashboard_address": ":0"},
        "train": {"network": "lm_transformer", "objective": "causal_lm", "epochs": args.pretrain_epochs,
                  "batch_size": 32, "np": 2, "learning_rate": args.pretrain_lr}})


def labelled_config(folder: Path, args, tokenizer: str, init_from: str | None) -> JobConfig:
    # train / test fractions put about per-class / test-per-class records of each class in each split
    test = args.test_per_class / (args.per_class + args.test_per_class)
    return JobConfig.model_validate({
        "dataset": {"name": "fortune-topics"}, "seed": args.seed,
        "source": {"kind": "text", "path": str(folder / "labelled.tsv"), "labelled": True, "delimiter": "\t"},
        "schema": {"labels": args.classes},
        "features": {"groups": [{"kind": "subword", "name": "tokens", "columns": ["text"], "length": args.length,
                                 "tokenizer_file": tokenizer}]},
        "split": {"train": round(0.9 - test, 6), "val": 0.1, "test": round(test, 6)},
        "augment": {"copies": 0}, "store": {"chunk_rows": 256},
        "cluster": {"workers": 2, "dashboard_address": ":0"},
        "train": {"network": "lm_transformer", "objective": "classify", "epochs": args.finetune_epochs,
                  "batch_size": 16, "np": 2, "learning_rate": args.finetune_lr, "init_from": init_from}})


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--classes", nargs="+", default=["computers", "politics", "science", "songs-poems"])
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=4000)
    parser.add_argument("--pretrain-epochs", type=int, default=6)
    parser.add_argument("--finetune-epochs", type=int, default=8)
    parser.add_argument("--pretrain-lr", type=float, default=1e-3)
    parser.add_argument("--finetune-lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default="/tmp/dcpipe-bench-pretrain")
    args = parser.parse_args(argv)
    folder = Path(args.workdir)
    folder.mkdir(parents=True, exist_ok=True)
    counts = write_sets(folder, args.classes, args.per_class, args.test_per_class, args.seed)
    quiet = lambda *a: None  # noqa: E731
    t0 = time.perf_counter()
    pre = run(corpus_config(folder, args), workdir=folder / "work", show_progress=False, log=quiet)
    t_pre = time.perf_counter() - t0
    tokenizer = str(Path(pre["dataset_path"]) / "tokenizer.json")
    results = {}
    for name, init_from in (("fine-tuned", pre["run_id"]), ("from scratch", None)):
        t0 = time.perf_counter()
        summary = run(labelled_config(folder, args, tokenizer, init_from), workdir=folder / "work",
                      show_progress=False, log=quiet)
        results[name] = (summary, time.perf_counter() - t0)
    load = os.getloadavg()[0]
    print(f"\n{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, load {load:.1f}; "
          f"{json.dumps(counts)}; classes {args.classes}, {args.per_class} train / {args.test_per_class} test "
          f"per class, length {args.length}\n")
    print(f"pretraining: {pre['run_id']} on {pre['dataset_version']}: test_perplexity {pre['test_perplexity']:.1f} "
          f"(vocabulary {json.loads((Path(pre['run_dir']) / 'train_plan.json').read_text())['vocab_size']}), "
          f"test_token_accuracy {pre['test_token_accuracy']:.3f}, {pre['epochs']} epochs, {t_pre:.0f} s\n")
    print("| run | n_train | n_test | epochs | test_accuracy | wall s |\n|---|---|---|---|---|---|")
    for name, (s, seconds) in results.items():
        print(f"| {name} | {s['n_train']} | {s['n_test']} | {s['epochs']} | {s['test_accuracy']:.3f} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
