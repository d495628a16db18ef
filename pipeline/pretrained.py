"""``train.init_from: RUN``: the finished run whose pretrained body starts a fine-tuning run.

Resolved by :func:`pipeline.training.train` before any rank starts, so every mistake is one line:
the run must exist (a run id under the same workdir's ``runs/``, or a run folder's path), have
finished (its ``metrics.json`` and ``model.keras`` written), have trained ``lm_transformer``, and
have seen the same sequence length and the same tokenizer as the dataset being fine-tuned (prepare
it with ``features.groups[].tokenizer_file: <pretraining version>/tokenizer.json``). The plan then
carries the pretrained ``model.keras`` (``TrainPlan.init_model``) and rank 0 copies its body
(``models.transformer.transfer_body``) before the broadcast. The classifier attends the way the
body was pretrained unless ``train.attention`` says otherwise: causally after ``causal_lm`` (a
causal body read both ways sees contexts it never learned; bench/RESULTS-17.md measures it),
both ways after ``masked_lm``. :func:`record` is what the run's
``summary.json`` and ``lineage.json`` keep: the fine-tuned model traces back to the pretraining run
and its dataset version.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from models.plan import TrainPlan
from models.rundir import RUN_ID_RE, RunDir
from pipeline.errors import UserError
from pipeline.workdir import Workdir

#: the network whose body a fine-tuning run can start from (``models.transformer``)
PRETRAINABLE = "lm_transformer"


def _folder(init_from: str, workdir: Workdir) -> RunDir:
    where = f"train.init_from: {init_from}"
    if "/" in init_from:
        folder = Path(init_from)
    elif RUN_ID_RE.match(init_from):
        folder = workdir.runs / init_from
    else:
        raise UserError(f"{where} is not a run id or a run folder; give an id like 20261203-101500-ab12 "
                        f"(see `dcpipe runs list --workdir {workdir.path}`) or a run folder's path")
    if not folder.is_dir():
        raise UserError(f"{where}: no such run ({folder} does not exist); give a finished pretraining run's id "
                        f"(see `dcpipe runs list --workdir {workdir.path}`) or its folder")
    return RunDir(folder)


def _vocabulary(plan: TrainPlan):
    """The tokenizer (its JSON) or vocabulary the plan's token ids come from; None when unknown."""
    for t in plan.transform.get("features", {}).get("transforms", []):
        if t.get("name") == plan.x_var:
            state = t.get("state", {})
            return state.get("tokenizer") or state.get("vocabulary")
    return None


def resolve(init_from: str, workdir: Workdir, plan: TrainPlan) -> TrainPlan:
    """``plan`` with ``init_model`` set to the pretrained run's ``model.keras``; a one-line
    ``UserError`` naming ``train.init_from`` when the run cannot start this one."""
    run = _folder(init_from, workdir)
    where = f"train.init_from: {init_from}"
    if not (run.metrics.is_file() and run.model.is_file() and run.plan.is_file()):
        raise UserError(f"{where}: run {run.id} has not finished (no {run.metrics.name} or {run.model.name} in "
                        f"{run.path}); wait for it to finish, or give a finished run")
    theirs = TrainPlan.load(run.plan)
    tokenizer = Path(theirs.store).parent / "tokenizer.json"
    if plan.network != PRETRAINABLE:
        raise UserError(f"{where}: fine-tuning copies an {PRETRAINABLE} body but train.network is {plan.network}; "
                        f"set train.network: {PRETRAINABLE}")
    if theirs.network != PRETRAINABLE:
        raise UserError(f"{where}: run {run.id} trained {theirs.network}, not {PRETRAINABLE}; give a pretraining "
                        f"run (train.network: {PRETRAINABLE}, train.objective: causal_lm or masked_lm)")
    if list(theirs.input_shape) != list(plan.input_shape):
        raise UserError(f"{where}: run {run.id} was trained on sequences of {theirs.input_shape[0]} tokens, dataset "
                        f"{plan.dataset_version} has {plan.input_shape[0]}; prepare it with features.groups[].length: "
                        f"{theirs.input_shape[0]}")
    if theirs.vocab_size != plan.vocab_size or _vocabulary(theirs) != _vocabulary(plan):
        raise UserError(f"{where}: run {run.id} has another vocabulary ({theirs.vocab_size} tokens, from "
                        f"{theirs.dataset_version}) than dataset {plan.dataset_version} ({plan.vocab_size}); "
                        f"prepare it with features.groups[].tokenizer_file: {tokenizer}")
    plan = replace(plan, init_model=str(run.model))
    if plan.train.attention == "auto":   # attend the way the body learned to: causally after causal_lm
        plan = plan.with_train(attention="causal" if theirs.train.objective == "causal_lm" else "bidirectional")
    return plan


def record(init_model: str | None) -> dict | None:
    """What ``summary.json`` and ``lineage.json`` keep of the pretraining run behind ``init_model``:
    its id, folder, objective, dataset version, test perplexity and lineage file."""
    if not init_model:
        return None
    run = RunDir(Path(init_model).parent)
    plan = json.loads(run.plan.read_text()) if run.plan.is_file() else {}
    metrics = json.loads(run.metrics.read_text()) if run.metrics.is_file() else {}
    return {"run_id": run.id, "run_dir": str(run.path), "model": init_model,
            "objective": plan.get("train", {}).get("objective"), "dataset_version": plan.get("dataset_version"),
            "test_perplexity": metrics.get("test_perplexity"), "lineage": str(run.lineage)}
