"""``dcpipe train``: train on a stored dataset version with Horovod, resuming when asked.

The dataset is ``NAME[@VERSION]`` under ``<workdir>/datasets``; without a version (or with
``@latest``) the version whose manifest was created last is used. A run lives in
``<workdir>/runs/<run-id>``; ``--resume`` continues the newest run of that dataset version from its
last checkpoint.
"""
from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

from models.launch import default_np, launch, new_run_dir
from models.plan import TOKEN_NETWORKS, TrainPlan
from pipeline.config import COMPRESSION_PATTERN, JobConfig, dump_yaml
from pipeline.errors import UserError
from pipeline import store
from pipeline.store import DatasetRef


def resolve_dataset(spec: str, root: Path) -> DatasetRef:
    """``NAME``, ``NAME@latest`` or ``NAME@VERSION`` -> an existing version under ``root``."""
    name, _, version = spec.partition("@")
    try:
        return store.resolve(root, name, version or store.LATEST)
    except UserError as exc:
        raise UserError(f"--dataset {spec}: {exc}") from None


def transform_of(manifest: dict, features: dict | None = None) -> dict:
    """The feature transform a raw record needs before the network: the stored pixel scaling, or
    (text, ``features`` = the fitted transform) the text cleaning and the fitted token sequence."""
    config = manifest["config"]
    schema = config["schema"]
    if features is not None:
        return {"kind": "text_sequence", "clean": config["clean"]["text"], "features": features,
                "labels": list(schema["labels"])}
    return {"kind": "pixel_scale", "value_min": schema["value_min"], "value_max": schema["value_max"],
            "image_shape": list(schema["image_shape"]), "n_fields": schema["n_fields"],
            "label_column": schema["label_column"], "labels": list(schema["labels"])}


def _input_of(ref: DatasetRef, manifest: dict, network: str) -> dict:
    """The plan's input: variable, shape per sample, vocabulary size and (text) fitted transform."""
    variables = manifest["variables"]
    x_var = "tokens" if "tokens" in variables else "image"
    if (x_var == "tokens") != (network in TOKEN_NETWORKS):
        takes = "token ids" if network in TOKEN_NETWORKS else "images"
        fix = ", ".join(TOKEN_NETWORKS) if x_var == "tokens" else "cnn, mlp or transformer"
        raise UserError(f"train.network: {network} takes {takes} but dataset {ref} stores {x_var!r}; "
                        f"set train.network to {fix}")
    if x_var == "image":
        return {"x_var": x_var, "input_shape": list(variables[x_var]["shape"][1:]), "vocab_size": 0,
                "transform": transform_of(manifest)}
    features = json.loads(store.open_version(ref).attrs["features"])
    vocabulary = next(t for t in features["transforms"] if t["name"] == x_var)["state"]["vocabulary"]
    return {"x_var": x_var, "input_shape": list(variables[x_var]["shape"][1:]), "vocab_size": len(vocabulary),
            "transform": transform_of(manifest, features)}


def plan_for(cfg: JobConfig, ref: DatasetRef, run_dir: Path, resume: bool = False) -> TrainPlan:
    """The training plan of ``cfg.train`` on dataset version ``ref``."""
    manifest, t = ref.manifest(), cfg.train
    schema = manifest["config"]["schema"]
    return TrainPlan(store=str(ref.data_path), dataset_version=str(ref), ranges=manifest["ranges"],
                     n_classes=len(schema["labels"]), run_dir=str(run_dir), network=t.network, epochs=t.epochs,
                     batch_size=t.batch_size, learning_rate=t.learning_rate, compression=t.compression,
                     threads_per_rank=t.threads_per_rank, shuffle_buffer=t.shuffle_buffer,
                     read_threads=t.read_threads, checkpoint_every=t.checkpoint_every, resume=resume,
                     seed=cfg.seed, **_input_of(ref, manifest, t.network))


def _last_run(workdir: Path, ref: DatasetRef) -> Path | None:
    """The newest run directory that trained on ``ref``."""
    runs = []
    for plan_path in (workdir / "runs").glob("*/train_plan.json"):
        if json.loads(plan_path.read_text()).get("dataset_version") == str(ref):
            runs.append(plan_path.parent)
    return max(runs, key=lambda p: p.name) if runs else None


def train_command(cfg: JobConfig, dataset: str, workdir: str | Path, np: int | None = None,
                  compression: str | None = None, resume: bool = False, log=print) -> dict:
    """Train on ``dataset``; return rank 0's metrics (also in ``runs/<id>/metrics.json``)."""
    if compression is not None:
        if not re.match(COMPRESSION_PATTERN, compression):
            raise UserError(f"--compression {compression!r} is not one of none, fp16, topk:RATIO "
                            "(0 < RATIO <= 1) or powersgd:RANK (RANK >= 1); e.g. --compression topk:0.01")
        cfg = cfg.with_overrides(train={"compression": compression})
    workdir = Path(workdir).resolve()
    ref = resolve_dataset(dataset, workdir / "datasets")
    run_dir = _last_run(workdir, ref) if resume else None
    if resume and run_dir is None:
        raise UserError(f"--resume: no earlier run on {ref} in {workdir / 'runs'}; run without --resume first")
    if run_dir is None:
        run_dir = new_run_dir(workdir)
        (run_dir / "config.yaml").write_text(dump_yaml(cfg))
        plan = plan_for(cfg, ref, run_dir)
    else:  # the run goes on as it was planned; only the checkpoint is new
        plan = replace(TrainPlan.load(run_dir / "train_plan.json"), resume=True)
    log(f"Training on {ref} in {run_dir}" + (" (resuming from its last checkpoint)" if resume else ""))
    return launch(plan, np or cfg.train.np or default_np(), log=log)
