"""Runs as records: ``dcpipe runs list | show RUN | compare RUN RUN...``.

A run's state comes from its ``summary.json`` and its lock (``models.rundir``): *finished* and
*failed* are written by the run itself; *running* is a summary that says so while its lock is held;
a summary that says running with no one holding the lock is a run that was *interrupted* (killed).
"""
from __future__ import annotations

import json

from models.rundir import RunDir
from pipeline.errors import UserError
from pipeline.workdir import Workdir

COLUMNS = ("run", "dataset", "network", "compression", "ranks", "accuracy", "wall_s", "state")


def read_json(path) -> dict:
    """A run file as a dict; {} when it is not there; a one-line error when it is damaged."""
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); the run record is damaged") from None


def state_of(run: RunDir, summary: dict) -> str:
    """running / finished / failed / interrupted."""
    said = summary.get("state") or ("finished" if run.metrics.is_file() else "running")
    if said == "running" and not run.is_locked():
        return "interrupted"
    return said


def row(run: RunDir) -> dict:
    """One run as the table's columns."""
    summary = read_json(run.summary)
    plan = read_json(run.plan) if not summary else {}
    acc = summary.get("test_accuracy")
    return {"run": run.id, "dataset": summary.get("dataset_version") or plan.get("dataset_version", "-"),
            "network": summary.get("network") or plan.get("network", "-"),
            "compression": summary.get("compression") or plan.get("compression", "-"),
            "ranks": summary.get("world_size", "-"), "accuracy": "-" if acc is None else f"{acc:.4f}",
            "wall_s": summary.get("wall_seconds", "-"), "state": state_of(run, summary)}


def table(rows: list[dict], columns=COLUMNS) -> list[str]:
    """Rows as aligned text lines, a header first."""
    widths = {c: max([len(c), *(len(str(r[c])) for r in rows)]) for c in columns}
    fmt = lambda r: "  ".join(f"{str(r[c]):<{widths[c]}}" for c in columns).rstrip()  # noqa: E731
    return [fmt({c: c for c in columns}), *(fmt(r) for r in rows)]


def list_lines(workdir: Workdir) -> list[str]:
    runs = workdir.run_dirs()
    if not runs:
        return [f"no runs under {workdir.runs}"]
    return table([row(r) for r in runs])


SHOWN = ("dataset_version", "dataset_path", "network", "objective", "world_size", "compression", "epochs", "device",
         "test_accuracy", "test_loss", "test_perplexity", "test_token_accuracy", "restarts", "prepare_seconds",
         "train_seconds", "wall_seconds", "started", "finished", "error", "bundle", "bundle_note", "tensorboard",
         "report", "lineage")


def show_lines(workdir: Workdir, run_id: str) -> list[str]:
    """One run: its state, figures, paths and per-epoch history."""
    run = workdir.run(run_id)
    summary = read_json(run.summary)
    lines = [f"run {run.id}  ({run.path})  {state_of(run, summary)}"]
    lines += [f"  {k:<16} {summary[k]}" for k in SHOWN if summary.get(k) not in (None, [], "")]
    if summary.get("init_from"):
        init = summary["init_from"]
        lines.append(f"  {'init_from':<16} {init['run_id']} ({init.get('objective')} on {init.get('dataset_version')})")
    history = read_json(run.history) if run.history.is_file() else []
    if history:
        # a classifier's accuracy, or a language model's perplexity (models.lm)
        key = "val_accuracy" if "val_accuracy" in history[0] else "val_perplexity"
        lines.append(f"  epoch  train_loss  val_loss  {key:>12}  seconds")
        lines += [f"  {h['epoch']:>5}  {h['train_loss']:>10.4f}  {h['val_loss']:>8.4f}  "
                  f"{h.get(key, float('nan')):>12.4f}  {h['seconds']:>7.1f}" for h in history]
    return lines


COMPARED = ("dataset_version", "network", "compression", "world_size", "epochs", "test_accuracy", "test_loss",
            "train_seconds", "wall_seconds", "restarts")


def compare_lines(workdir: Workdir, run_ids: list[str]) -> list[str]:
    """Runs side by side: one line per field, one column per run; fields that differ are marked."""
    if len(run_ids) < 2:
        raise UserError("runs compare: give at least two runs (see `dcpipe runs list`)")
    runs = [workdir.run(r) for r in run_ids]
    summaries = [read_json(r.summary) for r in runs]
    configs = [_train_section(r) for r in runs]
    fields = [(k, [s.get(k, "-") for s in summaries]) for k in COMPARED]
    fields += [(f"train.{k}", [c.get(k, "-") for c in configs])
               for k in sorted(set().union(*configs))]
    fields.insert(0, ("state", [state_of(r, s) for r, s in zip(runs, summaries)]))
    rows = [{"field": ("* " if len({json.dumps(v, default=str) for v in values}) > 1 else "  ") + name,
             **{r.id: _short(v) for r, v in zip(runs, values)}} for name, values in fields]
    return table(rows, ("field", *(r.id for r in runs)))


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, list):
        return str(len(value))
    return str(value)


def _train_section(run: RunDir) -> dict:
    """The train settings a run used, from its plan (what the ranks read)."""
    plan = read_json(run.plan)
    return plan.get("train") or {k: v for k, v in plan.items()
                                 if k in ("epochs", "batch_size", "learning_rate", "checkpoint_every",
                                          "shuffle_buffer", "read_threads", "threads_per_rank")}
