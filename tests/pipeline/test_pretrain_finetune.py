"""Pretrain, then fine-tune, end to end on real parts: an unlabelled corpus -> quality filters and
near-duplicates -> BPE tokenizer -> packed store on a real LocalCluster -> 2-rank ``causal_lm``
pretraining under a real ``horovodrun`` -> a labelled set encoded with the pretraining version's
``tokenizer.json`` -> 2-rank fine-tuning with ``train.init_from``. The pretrained perplexity beats
a uniform guess, every fine-tuning rank starts from the pretrained body, and the fine-tuned run's
lineage names the pretraining run and its dataset version."""
import json
import math
from pathlib import Path

import pytest
import yaml

from pipeline import run
from pipeline.cli import main as cli_main
from pipeline.cluster import local_client
from tests.models.helpers import horovodrun
from tests.pipeline.text_corpus import corpus_job, corpus_lines, labelled_lines

pytestmark = [pytest.mark.integration, pytest.mark.horovod]
TRAIN = {"network": "lm_transformer", "np": 2, "batch_size": 8, "compression": "fp16"}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """One real LocalCluster of 2 workers for both prepares (the corpus, the labelled set)."""
    horovodrun()                               # skips with the reason when Horovod is missing
    with local_client(corpus_job(Path("corpus.txt")).cluster, log=lambda *a: None) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        yield client


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, client):
    tmp = tmp_path_factory.mktemp("pretrain")
    lines, _ = corpus_lines()
    (tmp / "corpus.txt").write_text("\n".join(lines) + "\n")
    cfg = corpus_job(tmp / "corpus.txt", train={**TRAIN, "objective": "causal_lm", "epochs": 4,
                                                "learning_rate": 2e-3})
    summary = run(cfg, workdir=tmp / "work", show_progress=False, log=lambda *a: None, client=client)
    return tmp, summary


@pytest.fixture(scope="module")
def fine_tuned(pretrained, client):
    tmp, pre = pretrained
    (tmp / "labelled.tsv").write_text("\n".join(labelled_lines(per_class=60)) + "\n")
    cfg = fine_tune_job(tmp, pre, init_from=pre["run_id"])
    summary = run(cfg, workdir=tmp / "work", show_progress=False, log=lambda *a: None, client=client)
    return tmp, summary


def fine_tune_job(tmp: Path, pre: dict, **train):
    """The labelled set as a dataset of 32 subword ids per record, with the pretraining tokenizer."""
    return corpus_job(
        tmp / "labelled.tsv", dataset={"name": "labelled"}, clean={"near_duplicates": None, "quality": None},
        source={"labelled": True, "delimiter": "\t"}, schema={"labels": ["low", "high"]},
        split={"train": 0.7, "val": 0.15, "test": 0.15},
        features={"groups": [{"kind": "subword", "name": "tokens", "columns": ["text"], "length": 32,
                              "tokenizer_file": str(Path(pre["dataset_path"]) / "tokenizer.json")}]},
        train={**TRAIN, "objective": "classify", "epochs": 6, "learning_rate": 1.5e-3, **train})


def test_pretraining_reports_perplexity_below_a_uniform_guess(pretrained):
    tmp, summary = pretrained
    run_dir = Path(summary["run_dir"])
    plan = json.loads((run_dir / "train_plan.json").read_text())
    vocab = plan["vocab_size"]
    assert plan["x_var"] == "tokens" and plan["input_shape"] == [32] and 100 < vocab <= 200
    assert summary["state"] == "finished" and summary["world_size"] == 2 and summary["objective"] == "causal_lm"
    assert summary["test_accuracy"] is None                      # a language model has no class accuracy
    ppl = summary["test_perplexity"]
    assert math.isfinite(ppl) and ppl < 0.5 * vocab              # a uniform guess is the vocabulary size
    assert ppl == pytest.approx(math.exp(summary["test_loss"]), rel=1e-6)
    assert 0 < summary["test_token_accuracy"] < 1
    history = json.loads((run_dir / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4] and "val_accuracy" not in history[0]
    assert history[-1]["val_perplexity"] < history[0]["val_perplexity"]
    # no serving bundle for a pretraining run: said so, nothing half-written
    assert summary["bundle"] is None and "fine-tune it" in summary["bundle_note"]
    assert not (run_dir / "bundle").exists() and (run_dir / "model.keras").is_file()
    assert Path(summary["history_plot"]).is_file()
    manifest = json.loads((Path(summary["dataset_path"]) / "manifest.json").read_text())
    assert manifest["quarantined"]["near_duplicate"] == 10      # the planted copies, filtered before packing


def test_fine_tuning_starts_every_rank_from_the_pretrained_body(pretrained, fine_tuned):
    import keras

    from models import lm
    _, pre = pretrained
    _, summary = fine_tuned
    run_dir = Path(summary["run_dir"])
    expected = lm.body_digest(keras.models.load_model(Path(pre["run_dir"]) / "model.keras", compile=False))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["init_from"]["pretrained_body_sha256"] == expected
    log = (run_dir / "train.log").read_text()
    assert f"[rank 0/2] initial body sha256 {expected}" in log and f"[rank 1/2] initial body sha256 {expected}" in log
    assert summary["state"] == "finished" and summary["objective"] == "classify"
    assert summary["attention"] == "causal" and metrics["attention"] == "causal"   # as the causal_lm body learned
    assert summary["test_accuracy"] > 0.75                      # two classes: chance is 0.5
    assert Path(summary["bundle"], "bundle.json").is_file()
    # the fine-tuned model traces back to the pretraining run and its dataset version
    for record in (summary["init_from"], json.loads((run_dir / "lineage.json").read_text())["init_from"]):
        assert record["run_id"] == pre["run_id"] and record["dataset_version"] == pre["dataset_version"]
        assert record["objective"] == "causal_lm" and record["test_perplexity"] == pre["test_perplexity"]


def test_lineage_and_runs_show_name_the_pretraining_run(pretrained, fine_tuned, capsys):
    tmp, pre = pretrained
    _, summary = fine_tuned
    work = str(tmp / "work")
    assert cli_main(["lineage", summary["run_id"], "--workdir", work]) == 0
    assert f"init     {pre['run_id']}  causal_lm on {pre['dataset_version']}" in capsys.readouterr().out
    assert cli_main(["runs", "show", pre["run_id"], "--workdir", work]) == 0
    shown = capsys.readouterr().out
    assert "val_perplexity" in shown and "test_perplexity" in shown and "bundle_note" in shown


def test_a_bad_init_from_is_one_line_before_any_run_starts(pretrained, fine_tuned, capsys, monkeypatch):
    monkeypatch.setenv("DCPIPE_MONITOR", "0")          # no scheduler for a run refused before it starts
    tmp, pre = pretrained
    _, summary = fine_tuned
    runs = sorted((tmp / "work" / "runs").iterdir())
    config = tmp / "bad.yaml"
    config.write_text(yaml.safe_dump(fine_tune_job(tmp, pre, init_from="20000101-000000-dead").to_dict()))
    code = cli_main(["train", "--dataset", summary["dataset_version"], "--workdir", str(tmp / "work"),
                     "--config", str(config)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "train.init_from: 20000101-000000-dead: no such run" in err
    assert sorted((tmp / "work" / "runs").iterdir()) == runs      # no run folder made
