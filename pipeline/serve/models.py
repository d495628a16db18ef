"""The loaded runs: each run's bundle, its content hash, its input checks, its cache and its batcher.

A run is served only when it is finished (``summary.json`` state ``finished``); ``default`` names
the first run loaded that is still loaded.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.config import ServeConfig
from pipeline.errors import UserError
from pipeline.serve.batching import Batcher
from pipeline.serve.cache import AnswerCache
from pipeline.serve.metrics import ServeMetrics
from pipeline.serve.records import TableRecords, TextRecords, records_for
from pipeline.workdir import Workdir

DEFAULT = "default"


def bundle_digest(folder: Path) -> str:
    """sha256 over the bundle's files (relative path and bytes, in sorted order), 16 hex digits."""
    h = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def finished_bundle(workdir: Workdir, run_id: str) -> tuple[str, Path]:
    """The run id and bundle folder of a finished run; ``UserError`` in one line otherwise."""
    run = workdir.run(run_id)
    try:
        state = json.loads(run.summary.read_text()).get("state")
    except (OSError, json.JSONDecodeError):
        state = None
    if state != "finished":
        raise UserError(f"{run.path}: run {run.id} is {state or 'without a summary'}, not finished; "
                        "serve a finished run (see `dcpipe runs list`)")
    if not (run.bundle / "bundle.json").is_file():
        raise UserError(f"{run.bundle}: run {run.id} has no serving bundle; train it again")
    return run.id, run.bundle


@dataclass
class ServedModel:
    """One loaded run."""

    name: str
    digest: str
    bundle: object                    # models.export.Bundle
    records: TableRecords | TextRecords
    meta: dict
    cache: AnswerCache
    batcher: Batcher = field(repr=False)

    def probabilities(self, rows) -> np.ndarray:
        """Softmax of the model's logits for checked rows (runs on the batcher's thread)."""
        import tensorflow as tf
        logits = np.asarray(self.bundle.model.serve(tf.constant(self.bundle.transform(rows))), dtype=np.float64)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    def labels_of(self, probs: np.ndarray) -> list:
        return [self.bundle.labels[i] for i in np.argmax(probs, axis=1)]

    def metadata(self) -> dict:
        """``GET /v2/models/{model}``: the Open Inference Protocol fields, then dcpipe's."""
        k = len(self.bundle.labels)
        return {"name": self.name, "versions": [self.digest], "platform": "tensorflow_savedmodel",
                "inputs": [self.records.input_meta()],
                "outputs": [{"name": "label", "datatype": _label_type(self.bundle.labels), "shape": [-1]},
                            {"name": "probabilities", "datatype": "FP32", "shape": [-1, k]}],
                "labels": self.bundle.labels, "dataset_version": self.meta.get("dataset_version"),
                "network": self.meta.get("network"), "cache": self.cache.stats(),
                "queue_depth": self.batcher.depth}


def _label_type(labels: list) -> str:
    return "INT64" if all(isinstance(v, int) for v in labels) else "BYTES"


class ModelRegistry:
    """The runs this server holds, by run id, in load order."""

    def __init__(self, workdir: Workdir, cfg: ServeConfig, metrics: ServeMetrics):
        self.workdir, self.cfg, self.metrics = workdir, cfg, metrics
        self._models: dict[str, ServedModel] = {}
        self._lock = asyncio.Lock()

    def names(self) -> list[str]:
        return list(self._models)

    def get(self, name: str) -> ServedModel | None:
        if name == DEFAULT:
            return next(iter(self._models.values()), None)
        return self._models.get(name)

    async def load(self, run_id: str) -> ServedModel:
        """Load (or reload) a finished run's bundle; the old one keeps serving until the new one is ready."""
        async with self._lock:
            run_id, folder = finished_bundle(self.workdir, run_id)
            model = await asyncio.get_running_loop().run_in_executor(None, self._open, run_id, folder)
            await model.batcher.warm_up(_warm_row(model.records))
            old, self._models[run_id] = self._models.get(run_id), model
            model.batcher.start()
            if old is not None:
                await old.batcher.stop()
            return model

    async def unload(self, name: str) -> bool:
        async with self._lock:
            model = self.get(name)
            if model is None:
                return False
            del self._models[model.name]
            await model.batcher.stop()
            return True

    async def close(self) -> None:
        for name in list(self._models):
            await self.unload(name)

    def _open(self, run_id: str, folder: Path) -> ServedModel:
        from models.export import load_bundle   # TensorFlow: only when a model is loaded
        bundle = load_bundle(folder)
        records = records_for(bundle.transform)
        meta = json.loads((folder / "bundle.json").read_text())
        cfg, m = self.cfg, self.metrics
        holder: dict = {}
        batcher = Batcher(lambda rows: holder["model"].probabilities(rows), cfg.max_batch_size, cfg.max_wait_ms,
                          cfg.max_queue, on_batch=m.batch_size.labels(run_id).observe)
        holder["model"] = ServedModel(run_id, bundle_digest(folder), bundle, records, meta,
                                      AnswerCache(cfg.cache_size), batcher)
        m.queue_depth.labels(run_id).set_function(lambda: batcher.depth)
        return holder["model"]


def _warm_row(records):
    if isinstance(records, TableRecords):
        return np.full((1, records.n_values), records.value_min, dtype=np.float32)
    return ["warm up"]
