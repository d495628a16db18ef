"""The fortunes example (docs/corpus.md): its builder on a tiny synthetic fortunes folder, on Debian's
real package where it is installed, and its two configs."""
import importlib.util
import json
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.features import is_packed
from tests.conftest import REPO

EXAMPLES = REPO / "docs" / "examples"
_spec = importlib.util.spec_from_file_location("fortunes_build", EXAMPLES / "fortunes" / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

SHARED = "the quick brown fox jumps over the lazy dog again and again"
QUOTED = "one two three four five six seven eight nine ten"


def _fortunes_folder(tmp_path: Path) -> Path:
    """Three categories of 12 fortunes, with what the real files have: overstrikes, index files, a
    text found in two categories, and a near-copy (8 shared words) of a labelled one."""
    folder = tmp_path / "fortunes"
    folder.mkdir()
    for c, name in enumerate(("alpha", "beta", "gamma")):
        docs = [f"{name} fortune {i}: {name} says {'x' * (i + 1)} to {name} friends" for i in range(12)]
        if name == "alpha":
            docs[0] = "_\bu_\bn_\bd_\be_\br_\bl_\bi_\bn_\be_\bd words in an alpha fortune"
            docs[1] = SHARED                                        # also in gamma: never labelled
            docs[2] = f"an alpha fortune that says {QUOTED}"
        if name == "gamma":
            docs[2] = f"quoted: {' '.join(QUOTED.split()[:8])}, in gamma"   # 8 words of a labelled one
            docs[3] = SHARED.upper()                                # the same text once normalised
        (folder / name).write_text("\n%\n".join(docs) + "\n%\n")
        (folder / f"{name}.dat").write_bytes(bytes(range(c, c + 8)))
        (folder / f"{name}.u8").symlink_to(name)
    return folder


def test_builder_is_deterministic_and_keeps_labelled_rows_out_of_the_corpus(tmp_path):
    folder = _fortunes_folder(tmp_path)
    first = build.build(folder, tmp_path / "a", classes=("alpha", "beta"), per_class=11, seed=3)
    build.build(folder, tmp_path / "b", classes=("alpha", "beta"), per_class=11, seed=3)
    for name in ("labelled.jsonl", "corpus.jsonl", "build.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    labelled = [json.loads(x) for x in (tmp_path / "a" / "labelled.jsonl").read_text().splitlines()]
    corpus = [json.loads(x) for x in (tmp_path / "a" / "corpus.jsonl").read_text().splitlines()]
    assert first["fortunes"] == 36 and first["categories"] == 3            # .dat and .u8 are not categories
    assert [r["label"] for r in labelled] == ["alpha"] * 11 + ["beta"] * 11
    texts = [r["text"] for r in labelled]
    assert SHARED not in texts and "underlined words in an alpha fortune" in texts   # SHARED: twice in the package
    assert first["corpus"]["excluded"] == {"labelled": 22, "shares_8_words_with_labelled": 1}
    assert not any(r["text"].startswith("quoted:") for r in corpus) and len(corpus) == 36 - 22 - 1
    assert not {build.key(t) for t in texts} & {build.key(r["text"]) for r in corpus}
    assert [r["id"] for r in corpus if r["category"] == "alpha"] == ["alpha:2"]       # SHARED, file order
    assert sum(r["category"] == "beta" for r in corpus) == 1
    assert not any("\b" in r["text"] for r in corpus + labelled)


def test_builder_draw_depends_on_the_seed(tmp_path):
    folder = _fortunes_folder(tmp_path)
    a = build.build(folder, tmp_path / "a", classes=("gamma",), per_class=6, seed=0)
    b = build.build(folder, tmp_path / "b", classes=("gamma",), per_class=6, seed=1)
    assert a["labelled"]["sha256"] != b["labelled"]["sha256"]


def test_builder_names_an_unknown_class_and_the_fix(tmp_path):
    with pytest.raises(SystemExit, match=r"--classes: delta not in .*found alpha, beta, gamma.*50-fortunes"):
        build.build(_fortunes_folder(tmp_path), tmp_path / "out", classes=("alpha", "delta"))


def test_builder_on_debians_fortunes(tmp_path):
    if not (build.FORTUNES / "science").is_file():
        pytest.skip(f"{build.FORTUNES} not installed: run .ci/setup.d/50-fortunes.sh (Debian's fortunes package)")
    info = build.build(build.FORTUNES, tmp_path)
    labelled = [json.loads(x) for x in (tmp_path / "labelled.jsonl").read_text().splitlines()]
    assert info["labelled"]["rows"] == len(labelled) == 1600
    assert {c: sum(r["label"] == c for r in labelled) for c in build.CLASSES} == dict.fromkeys(build.CLASSES, 400)
    assert info["corpus"]["rows"] > 10_000 and info["corpus"]["excluded"]["labelled"] == 1600


def test_the_example_configs_validate_and_share_one_length():
    pretrain = load_config(EXAMPLES / "fortunes-pretrain.yaml")
    finetune = load_config(EXAMPLES / "fortunes-finetune.yaml")
    assert is_packed(pretrain) and not is_packed(finetune)
    assert pretrain.clean.near_duplicates is not None and pretrain.clean.quality is not None
    (packed,), (subword,) = pretrain.features.groups, finetune.features.groups
    assert (packed["kind"], subword["kind"]) == ("packed", "subword") and packed["length"] == subword["length"]
    assert subword["tokenizer_file"] == "docs/examples/fortunes/tokenizer.json"
    assert (pretrain.train.objective, finetune.train.objective) == ("causal_lm", "classify")
    assert finetune.train.network == "lm_transformer" and finetune.schema.labels == list(build.CLASSES)


def test_the_example_configs_take_command_line_overrides():
    # --workers / --np / --epochs are overrides: the pretraining config must survive them with causal_lm
    for name in ("fortunes-pretrain.yaml", "fortunes-finetune.yaml"):
        cfg = load_config(EXAMPLES / name).with_overrides(cluster={"workers": 2}, train={"np": 2, "epochs": 1})
        assert (cfg.cluster.workers, cfg.train.np, cfg.train.epochs) == (2, 2, 1)
