"""Lineage: which data made a model. Each run records it in ``runs/<id>/lineage.json``.

``trace`` follows the chain model -> run -> dataset version -> config -> source files, checking on
the way that the model file and the dataset manifest are still the bytes the run recorded. A
fine-tuned run (``train.init_from``) also names the pretraining run it started from and that run's
dataset version (``init_from``; that run's own ``lineage.json`` goes on from there).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from models.rundir import atomic_write_text
from pipeline import provenance
from pipeline.errors import UserError
from pipeline.store import MANIFEST, DatasetRef, parse_spec

LINEAGE = "lineage.json"
SUMMARY = "summary.json"


def _sha256(path: Path) -> str | None:
    return provenance.file_sha256(path) if path.is_file() else None


def record_run(run_dir: Path, ref: DatasetRef, summary: dict) -> Path:
    """Write ``run_dir/lineage.json``: the model's, config's and dataset manifest's digests."""
    model = Path(summary.get("model", run_dir / "model.keras"))
    record = {
        "run_id": run_dir.name,
        "recorded": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {"path": str(model), "sha256": _sha256(model),
                  "exported": summary.get("exported_model")},
        "dataset": {"ref": str(ref), "name": ref.name, "version": ref.version, "root": str(ref.root),
                    "path": str(ref.path), "manifest_sha256": _sha256(ref.path / MANIFEST)},
        "config": {"path": str(run_dir / "config.yaml"), "sha256": _sha256(run_dir / "config.yaml")},
        "code": {"pipeline_sha256": provenance.code_hash(), "git_commit": provenance.git_commit()},
        "init_from": summary.get("init_from"),     # pipeline.pretrained.record, or None (from scratch)
    }
    return atomic_write_text(run_dir / LINEAGE, json.dumps(record, indent=2) + "\n")


def run_dir_of(run: str, workdir: Path) -> Path:
    """``run`` as a run folder: a path (it has a ``/``) or a run id under ``workdir/runs``."""
    if "/" in run:                     # a path the user typed: theirs to choose
        folder = Path(run)
    else:
        if not run or run.startswith(".") or not all(c.isalnum() or c in "-_." for c in run):
            raise UserError(f"run id {run!r} is not allowed; give an id like 20261122-052300-ab12 "
                            "or the path of a run folder")
        folder = Path(workdir) / "runs" / run
    if not (folder / SUMMARY).is_file() and not (folder / LINEAGE).is_file():
        raise UserError(f"{folder}: no run found (no {SUMMARY} or {LINEAGE}); "
                        f"list runs with `dcpipe runs list --workdir {workdir}`")
    return folder


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); the run record is damaged") from None


@dataclass(frozen=True)
class Trace:
    run_dir: Path
    record: dict          # lineage.json (or what summary.json says, for runs before lineage.json)
    summary: dict
    manifest: dict | None  # None when the dataset version is gone
    notes: tuple[str, ...]


def trace(run_dir: Path) -> Trace:
    """Follow one run's lineage and check the recorded digests against what is on disk now."""
    summary, record = _load(run_dir / SUMMARY), _load(run_dir / LINEAGE)
    notes = []
    if not record:
        notes.append(f"{LINEAGE} missing (run older than lineage records): using {SUMMARY}")
        name, version = parse_spec(summary.get("dataset_version", ""))
        path = Path(summary.get("dataset_path", ""))
        record = {"run_id": run_dir.name, "model": {"path": summary.get("model"), "sha256": None},
                  "dataset": {"ref": f"{name}@{version}", "name": name, "version": version,
                              "root": str(path.parent.parent), "path": str(path), "manifest_sha256": None},
                  "config": {"path": str(run_dir / "config.yaml"), "sha256": None}, "code": {}}
    data = record["dataset"]
    ref = DatasetRef(root=Path(data["root"]), name=data["name"], version=data["version"])
    manifest = None
    if not ref.exists():
        notes.append(f"dataset version {ref} is no longer in {ref.root} (removed by gc?)")
    else:
        manifest = ref.manifest()
        if data.get("manifest_sha256") and _sha256(ref.path / MANIFEST) != data["manifest_sha256"]:
            notes.append(f"{ref.path / MANIFEST} changed since the run recorded it")
    model = record["model"]
    if model.get("sha256") and _sha256(Path(model["path"])) != model["sha256"]:
        notes.append(f"model {model['path']} changed or is gone since the run recorded it")
    return Trace(run_dir, record, summary, manifest, tuple(notes))


def _config_line(config: dict) -> str:
    parts = [f"seed {config.get('seed')}"]
    for section in ("split", "augment", "store"):
        fields = config.get(section, {})
        parts.append(f"{section} " + " ".join(f"{k}={v}" for k, v in fields.items()))
    return "; ".join(parts)


def format_trace(t: Trace) -> list[str]:
    """The chain as lines: model, run, dataset, config, code, one line per source file."""
    r, s, m = t.record, t.summary, t.manifest
    sha = (lambda d: d[:16] if d else "not recorded")  # noqa: E731
    lines = [f"model    {r['model'].get('path')}  sha256 {sha(r['model'].get('sha256'))}",
             f"run      {r['run_id']}  test_accuracy {s.get('test_accuracy')}  world_size "
             f"{s.get('world_size')}  compression {s.get('compression')}",
             f"dataset  {r['dataset']['ref']}  {r['dataset']['path']}  manifest sha256 "
             f"{sha(r['dataset'].get('manifest_sha256'))}"]
    init = r.get("init_from")
    if init:
        lines.append(f"init     {init['run_id']}  {init.get('objective')} on {init.get('dataset_version')}  "
                     f"test_perplexity {init.get('test_perplexity')}  lineage {init.get('lineage')}")
    if m is not None:
        counts = m.get("counts") or {k: m.get(f"n_{k}") for k in ("train", "val", "test")}
        lines.append(f"         created {m.get('created')}  parent {m.get('parent_version')}  "
                     f"records_in {m.get('records_in')}  records_out {m.get('records_out')}  "
                     f"counts {counts}  quarantined {m.get('quarantined')}")
        lines.append(f"config   {_config_line(m.get('config', {}))}")
        code = m.get("code", {})
        lines.append(f"code     pipeline sha256 {sha(code.get('hash'))}  git {code.get('git_commit')}")
        for src in m.get("sources", []):
            lines.append(f"source   {src['path']}  {src['bytes']} bytes  sha256 {src['sha256']}")
    lines += [f"note     {n}" for n in t.notes]
    return lines
