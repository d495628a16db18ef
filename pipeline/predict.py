"""``dcpipe predict``: a run's model over a stored dataset version on the Dask cluster.

The stored samples are already transformed (pixels in [0, 1], token ids), so the network's ``serve``
endpoint takes them as they are; each worker loads the SavedModel once (``_model``, cached by
bundle path and content hash), not once per task. The predictions are published as a dataset
version of their own, ``<name>-predictions@<version>``, where the version is a hash of the input
version, the split and the bundle's content, and the manifest's ``lineage`` names the run.

>>> parse_target("mnist@3f2a9c0d1b7e4a55:test")
('mnist@3f2a9c0d1b7e4a55', 'test')
>>> parse_target("mnist")
('mnist', 'test')
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone

import dask.array as da
import numpy as np
import xarray as xr

from pipeline import store
from pipeline.cluster import dask_client
from pipeline.config import JobConfig
from pipeline.errors import UserError
from pipeline.serve.models import bundle_digest, finished_bundle
from pipeline.workdir import Workdir

SPLITS = ("train", "val", "test", "all")


@dataclass(frozen=True)
class Predicted:
    ref: store.DatasetRef
    n: int
    accuracy: float | None


def parse_target(spec: str) -> tuple[str, str]:
    """``NAME@VERSION[:split]`` -> (``NAME@VERSION``, split); the split defaults to ``test``."""
    head, sep, split = spec.rpartition(":")
    if not sep:
        return spec, "test"
    if split not in SPLITS:
        raise UserError(f"--dataset {spec}: unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    return head, split


@functools.lru_cache(maxsize=4)
def _model(path: str, digest: str):
    """The SavedModel at ``path`` and its input dtype, loaded once per worker process and bundle content."""
    import tensorflow as tf
    model = tf.saved_model.load(path)
    return model, model.serve.concrete_functions[0].structured_input_signature[0][0].dtype


def _probabilities(block: np.ndarray, path: str, digest: str) -> np.ndarray:
    """Softmax of the network's logits for one block of stored samples (runs on a worker)."""
    import tensorflow as tf
    model, dtype = _model(path, digest)
    logits = np.asarray(model.serve(tf.constant(block, dtype=dtype)), dtype=np.float64)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def predictions(ds: xr.Dataset, x_var: str, n_classes: int, bundle: str, digest: str) -> xr.Dataset:
    """The lazy predictions of ``ds[x_var]``: label, probabilities, true label, source file and line."""
    x = ds[x_var].data
    x = x.rechunk({i: -1 for i in range(1, x.ndim)})
    probs = da.map_blocks(_probabilities, x, bundle, digest, dtype=np.float32, chunks=(x.chunks[0], (n_classes,)),
                          drop_axis=list(range(2, x.ndim)), new_axis=None if x.ndim > 1 else [1])
    out = xr.Dataset({"probabilities": (("sample", "class"), probs),
                      "label": ("sample", probs.argmax(axis=1).astype(np.int16))})
    for var in ("label", "source_file", "source_line"):
        if var in ds:
            out["true_label" if var == "label" else var] = ds[var].variable
    return out.assign_attrs({k: v for k, v in ds.attrs.items() if k in ("label_names",)})


def _select(ds: xr.Dataset, manifest: dict, split: str) -> xr.Dataset:
    if split == "all":
        return ds
    lo, hi = manifest["ranges"][split]
    return ds.isel(sample=slice(lo, hi))


def predict(run_id: str, dataset: str, workdir, config: JobConfig | None = None, log=print) -> Predicted:
    """Predict ``dataset`` (``NAME@VERSION[:split]``) with run ``run_id``; publish and return the result."""
    cfg = config or JobConfig()
    work = Workdir(workdir)
    run_id, bundle = finished_bundle(work, run_id)
    spec, split = parse_target(dataset)
    try:
        ref = store.resolve_spec(work.datasets, spec)
    except UserError as exc:
        raise UserError(f"--dataset {dataset}: {exc}") from None
    manifest, meta = ref.manifest(), _bundle_meta(bundle)
    x_var, labels = meta["x_var"], manifest["config"]["schema"]["labels"]
    digest = bundle_digest(bundle)
    source = _select(store.open_version(ref), manifest, split)
    if x_var not in source:
        raise UserError(f"--dataset {dataset}: run {run_id} takes {x_var!r} but {ref} stores "
                        f"{', '.join(map(str, source.data_vars))}; predict a dataset prepared like its training data")
    out = predictions(source, x_var, len(labels), str(bundle / "model"), digest)
    target = store.DatasetRef(work.datasets, f"{ref.name}-predictions",
                              hashlib.sha256(f"{ref}:{split}:{digest}".encode()).hexdigest()[:16])
    record = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "records_out": source.sizes["sample"],
              "kind": "predictions", "sources": manifest.get("sources", []),
              "lineage": {"run": run_id, "run_dir": str(bundle.parent), "bundle_digest": digest, "input": str(ref),
                          "split": split, "network": meta.get("network")}}
    with dask_client(cfg.cluster, log=log):
        published = store.publish(out, None, record, target, cfg.store, log=log)
    stored = store.open_version(target)
    accuracy = (float((stored["label"] == stored["true_label"]).mean().compute()) if "true_label" in stored
                else None)
    log(f"Predictions {target} ({'reused' if published.reused else 'written'}): {source.sizes['sample']} samples "
        f"of {ref}:{split}" + (f", accuracy {accuracy:.4f}" if accuracy is not None else ""))
    return Predicted(target, source.sizes["sample"], accuracy)


def _bundle_meta(bundle) -> dict:
    import json
    return json.loads((bundle / "bundle.json").read_text())
