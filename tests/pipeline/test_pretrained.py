"""``train.init_from`` resolved before any rank starts: a finished lm_transformer run with the same
length and tokenizer gives the plan its model.keras; anything else is one line naming the field."""
import json

import pytest

from models.config import TrainConfig
from models.plan import TrainPlan
from models.rundir import RunDir
from pipeline import pretrained
from pipeline.errors import UserError
from pipeline.workdir import Workdir

TOKENIZER = '{"model": {"type": "BPE", "vocab": {"<pad>": 0}}}'


def _plan(run_dir, tokenizer=TOKENIZER, length=32, vocab=200, network="lm_transformer", objective="classify",
          store="/w/datasets/corpus/v1/data.zarr", version="corpus@v1") -> TrainPlan:
    transform = {"kind": "text_sequence", "features": {"transforms": [
        {"name": "tokens", "kind": "packed", "state": {"tokenizer": tokenizer, "vocab_size": vocab}}]}}
    return TrainPlan(train=TrainConfig(network=network, objective=objective), store=store, dataset_version=version,
                     ranges={}, input_shape=[length], n_classes=2, run_dir=str(run_dir), x_var="tokens",
                     vocab_size=vocab, transform=transform)


def _finished_run(workdir: Workdir, run_id="20261203-170000-ab12", objective="causal_lm", **plan) -> RunDir:
    run = RunDir(workdir.runs / run_id)
    run.path.mkdir(parents=True)
    _plan(run.path, objective=objective, **plan).save(run.plan)
    run.model.write_bytes(b"a keras archive")
    run.metrics.write_text(json.dumps({"test_perplexity": 31.5}))
    return run


@pytest.fixture
def workdir(tmp_path):
    return Workdir.open(tmp_path / "work")


def test_a_finished_pretraining_run_by_id_or_path_gives_its_model(workdir, tmp_path):
    run = _finished_run(workdir)
    for given in (run.id, str(run.path)):
        plan = pretrained.resolve(given, workdir, _plan(tmp_path / "new"))
        assert plan.init_model == str(run.model)
    record = pretrained.record(plan.init_model)
    assert record == {"run_id": run.id, "run_dir": str(run.path), "model": str(run.model), "objective": "causal_lm",
                      "dataset_version": "corpus@v1", "test_perplexity": 31.5, "lineage": str(run.lineage)}
    assert pretrained.record(None) is None


@pytest.mark.parametrize("given, change, match", [
    # nothing there
    ("20261203-000000-dead", {}, r"train\.init_from: 20261203-000000-dead: no such run \(.* does not exist\); "
                                 r"give a finished pretraining run's id"),
    # not an id
    ("../x y", {}, r"train\.init_from: \.\./x y: no such run"),
    ("bad id!", {}, r"train\.init_from: bad id! is not a run id or a run folder"),
    # still running or failed: no metrics.json
    ("RUN", {"unfinished": True}, r"train\.init_from: RUN: run 20261203-170000-ab12 has not finished \(no "
                                  r"metrics\.json or model\.keras .*\); wait for it to finish"),
    # another sequence length
    ("RUN", {"length": 64}, r"run 20261203-170000-ab12 was trained on sequences of 64 tokens, dataset corpus@v1 "
                            r"has 32; prepare it with features\.groups\[\]\.length: 64"),
    # another tokenizer, even of the same size
    ("RUN", {"tokenizer": '{"other": 1}'}, r"train\.init_from: RUN: run 20261203-170000-ab12 has another "
                                           r"vocabulary \(200 tokens, from corpus@v1\) than dataset corpus@v1 \(200\); "
                                           r"prepare it with features\.groups\[\]\.tokenizer_file: "
                                           r"/w/datasets/corpus/v1/tokenizer\.json"),
    ("RUN", {"vocab": 300}, r"has another vocabulary \(300 tokens"),
    # a run of another network
    ("RUN", {"network": "text_transformer", "objective": "classify"}, r"run 20261203-170000-ab12 trained text_transformer, not lm_transformer"),
])
def test_a_run_that_cannot_start_this_one_is_one_line(workdir, tmp_path, given, change, match):
    unfinished = change.pop("unfinished", False)
    run = _finished_run(workdir, **change)
    if unfinished:
        run.metrics.unlink()
    given = run.id if given == "RUN" else given
    with pytest.raises(UserError, match=match.replace("RUN", run.id)) as info:
        pretrained.resolve(given, workdir, _plan(tmp_path / "new"))
    assert "\n" not in str(info.value)


def test_fine_tuning_another_network_is_one_line(workdir, tmp_path):
    run = _finished_run(workdir)
    with pytest.raises(UserError, match=r"train\.init_from: .*copies an lm_transformer body but train\.network is "
                                        r"text_transformer; set train\.network: lm_transformer"):
        pretrained.resolve(run.id, workdir, _plan(tmp_path / "new", network="text_transformer"))


@pytest.mark.parametrize("objective, attention, expected", [
    ("causal_lm", "auto", "causal"),              # the classifier attends the way the body learned to
    ("masked_lm", "auto", "bidirectional"),
    ("causal_lm", "bidirectional", "bidirectional"),   # an explicit setting is kept
])
def test_the_classifier_attends_the_way_its_body_was_pretrained(workdir, tmp_path, objective, attention, expected):
    run = _finished_run(workdir, objective=objective)
    plan = _plan(tmp_path / "new").with_train(attention=attention)
    resolved = pretrained.resolve(run.id, workdir, plan)
    assert resolved.train.attention == expected and resolved.causal == (expected == "causal")
    assert not _plan(tmp_path / "scratch").causal       # from scratch, auto is bidirectional


def test_attention_is_a_classifier_setting():
    with pytest.raises(ValueError, match=r"train\.attention: causal applies to an lm_transformer classifier only"):
        TrainConfig(network="cnn", attention="causal")
    with pytest.raises(ValueError, match=r"train\.attention: bidirectional applies .* remove train\.attention"):
        TrainConfig(network="lm_transformer", objective="causal_lm", attention="bidirectional")
