"""``dcpipe predict``: a run's model over a stored dataset version, or over a file of raw records, on
the Dask cluster.

The stored samples are already transformed (pixels in [0, 1], token ids), so the network's ``serve``
endpoint takes them as they are; each worker loads the SavedModel once (``_model``, cached by
bundle path and content hash), not once per task. A file of raw records (``--input``: CSV lines as
the source had them, with or without the label) is cut into blocks of whole lines; each worker task
reads its block, checks each record as serving does (``pipeline.serve.records``) and applies the
bundle's stored transform, the bundle loaded once per worker (``_bundle``). The predictions are
published as a dataset version of their own, ``<name>-predictions@<version>``, where the version is a
hash of the input (version and split, or file content) and the bundle's content, and the manifest's
``lineage`` names the run.

>>> parse_target("mnist@3f2a9c0d1b7e4a55:test")
('mnist@3f2a9c0d1b7e4a55', 'test')
>>> parse_target("mnist")
('mnist', 'test')
"""
from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import xarray as xr

from pipeline import store
from pipeline.cluster import dask_client
from pipeline.config import JobConfig
from pipeline.errors import UserError
from pipeline.serve.models import bundle_digest, finished_bundle
from pipeline.serve.records import BadInput, TableRecords, records_for
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


def predict(run_id: str, dataset: str | None, workdir, config: JobConfig | None = None, log=print,
            input_file: str | None = None) -> Predicted:
    """Predict ``dataset`` (``NAME@VERSION[:split]``) or the raw records of ``input_file`` with run
    ``run_id``; publish and return the result."""
    work = Workdir(workdir)
    run_id, bundle = finished_bundle(work, run_id)
    if input_file is not None:
        out, target, record, what = _from_file(work, run_id, bundle, input_file)
    else:
        out, target, record, what = _from_dataset(work, run_id, bundle, dataset)
    return _publish(out, target, record, what, config or JobConfig(), log)


def _from_dataset(work: Workdir, run_id: str, bundle: Path, dataset: str):
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
    record = _record(source.sizes["sample"], manifest.get("sources", []), run_id, bundle, digest, meta,
                     input=str(ref), split=split)
    return out, target, record, f"{ref}:{split}"


def _record(n: int, sources: list, run_id: str, bundle: Path, digest: str, meta: dict, **inputs) -> dict:
    return {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "records_out": n,
            "kind": "predictions", "sources": sources,
            "lineage": {"run": run_id, "run_dir": str(bundle.parent), "bundle_digest": digest, **inputs,
                        "network": meta.get("network")}}


def _publish(out: xr.Dataset, target: store.DatasetRef, record: dict, what: str, cfg: JobConfig, log) -> Predicted:
    with dask_client(cfg.cluster, log=log):
        try:
            published = store.publish(out, None, record, target, cfg.store, log=log)
        except BadInput as exc:                    # a bad raw record, found by a worker
            raise UserError(f"--input {exc}; fix or drop that line") from None
    stored = store.open_version(target)
    accuracy = (float((stored["label"] == stored["true_label"]).mean().compute()) if "true_label" in stored
                else None)
    n = record["records_out"]
    log(f"Predictions {target} ({'reused' if published.reused else 'written'}): {n} samples "
        f"of {what}" + (f", accuracy {accuracy:.4f}" if accuracy is not None else ""))
    return Predicted(target, n, accuracy)


def _bundle_meta(bundle) -> dict:
    return json.loads((bundle / "bundle.json").read_text())


# --- raw records from a file (``--input``) ------------------------------------------------------------

#: records per task
BLOCK_LINES = 2048


@dataclass(frozen=True)
class RawFile:
    """A local CSV of raw records, cut into blocks of whole lines (what the client learns in one read).

    ``blocks`` are (first byte, end byte) of each block; ``lines`` the 1-based line number of every
    record (blank lines and a header line are skipped); ``labelled`` whether records carry the label.
    """

    path: str
    sha256: str
    size: int
    blocks: tuple[tuple[int, int], ...]
    counts: tuple[int, ...]
    lines: np.ndarray
    labelled: bool


def scan(path: str, n_fields: int, block_lines: int | None = None) -> RawFile:
    """Read ``path`` once: its hash, its record lines, a header (a first line that is not numbers),
    whether records hold ``n_fields`` fields (the label in) or ``n_fields - 1``; one-line errors."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UserError(f"--input {path}: cannot be read ({exc.strerror or exc}); give an existing CSV file") from None
    starts, lines, labelled, pos = [], [], None, 0
    for number, line in enumerate(data.split(b"\n"), start=1):
        begin, pos = pos, pos + len(line) + 1
        if not line.strip() or (number == 1 and not _numeric(line)):
            continue
        width = line.count(b",") + 1
        if labelled is None:
            if width not in (n_fields, n_fields - 1):
                raise UserError(f"--input {path}:{number}: expected {n_fields} fields (with the label) or "
                                f"{n_fields - 1} (without), got {width}; give records of the run's schema")
            labelled = width == n_fields
        starts.append(begin)
        lines.append(number)
    if not lines:
        raise UserError(f"--input {path}: no records; give a CSV of the run's schema")
    block_lines = block_lines or BLOCK_LINES
    firsts = starts[::block_lines]
    blocks = tuple(zip(firsts, firsts[1:] + [len(data)]))
    counts = tuple(min(block_lines, len(lines) - i) for i in range(0, len(lines), block_lines))
    return RawFile(str(Path(path).resolve()), hashlib.sha256(data).hexdigest(), len(data), blocks, counts,
                   np.asarray(lines, dtype=np.int64), bool(labelled))


def _numeric(line: bytes) -> bool:
    try:
        [float(v) for v in line.split(b",")]
        return True
    except ValueError:
        return False


@functools.lru_cache(maxsize=4)
def _bundle(folder: str, digest: str):
    """The bundle at ``folder`` (model and stored transform), loaded once per worker process and content."""
    from models.export import load_bundle
    return load_bundle(folder)


def _raw_block(path: str, start: int, end: int, first_line: int, labelled: bool, folder: str, digest: str
               ) -> np.ndarray:
    """(n, classes + 1) float32 for one block of raw lines (runs on a worker): the softmax, then the true
    label index (-1 without labels). A bad record raises ``BadInput`` naming ``path:line``."""
    import tensorflow as tf
    bundle = _bundle(folder, digest)
    n_fields, label_at = bundle.transform.n_fields, bundle.transform.label_column % bundle.transform.n_fields
    records: TableRecords = records_for(bundle.transform)
    with open(path, "rb") as fh:
        fh.seek(start)
        text = fh.read(end - start).decode("utf-8")
    rows, labels, names = [], [], [str(v) for v in bundle.labels]
    for number, line in enumerate(text.split("\n"), start=first_line):
        if not line.strip() or (number == 1 and not _numeric(line.encode())):
            continue
        fields = line.split(",")
        if labelled:
            if len(fields) != n_fields:
                raise BadInput(f"{path}:{number}: expected {n_fields} fields (with the label) like the first "
                               f"record, got {len(fields)}")
            label = fields.pop(label_at).strip()
            label = label[:-2] if label.endswith(".0") else label
            if label not in names:
                raise BadInput(f"{path}:{number}: label {label!r} is not one of the run's labels {names}")
            labels.append(names.index(label))
        rows.append(records.row(",".join(fields), f"{path}:{number}"))
    logits = np.asarray(bundle.model.serve(tf.constant(bundle.transform(np.stack(rows)))), dtype=np.float64)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = e / e.sum(axis=1, keepdims=True)
    true = np.asarray(labels if labelled else [-1] * len(rows), dtype=np.float64)[:, None]
    return np.hstack([probs, true]).astype(np.float32)


def _from_file(work: Workdir, run_id: str, bundle: Path, input_file: str):
    meta, digest = _bundle_meta(bundle), bundle_digest(bundle)
    spec = json.loads((bundle / "transform.json").read_text())
    if "n_fields" not in spec:
        raise UserError(f"--input {input_file}: run {run_id} is a {spec.get('kind')} model; --input takes numeric "
                        "records (CSV) only, predict its stored data with --dataset NAME@VERSION")
    raw = scan(input_file, spec["n_fields"])
    k = len(spec["labels"])
    parts, first_lines = [], raw.lines[np.cumsum((0,) + raw.counts[:-1])]
    for (start, end), n, first in zip(raw.blocks, raw.counts, first_lines):
        task = dask.delayed(_raw_block, pure=True)(raw.path, start, end, int(first), raw.labelled,
                                                     str(bundle), digest)
        parts.append(da.from_delayed(task, shape=(n, k + 1), dtype=np.float32))
    block = da.concatenate(parts)
    probs = block[:, :k]
    out = xr.Dataset({"probabilities": (("sample", "class"), probs),
                      "label": ("sample", probs.argmax(axis=1).astype(np.int16)),
                      "source_file": ("sample", np.zeros(len(raw.lines), dtype=np.int16)),
                      "source_line": ("sample", raw.lines)})
    if raw.labelled:
        out["true_label"] = ("sample", block[:, k].astype(np.int16))
    name = str(meta.get("dataset_version", "input")).partition("@")[0] or "input"
    target = store.DatasetRef(work.datasets, f"{name}-predictions",
                              hashlib.sha256(f"file:{raw.sha256}:{digest}".encode()).hexdigest()[:16])
    source = {"path": raw.path, "name": Path(raw.path).name, "bytes": raw.size, "sha256": raw.sha256}
    record = _record(len(raw.lines), [source], run_id, bundle, digest, meta, input=raw.path,
                     input_sha256=raw.sha256, split=None, labelled=raw.labelled)
    return out, target, record, Path(raw.path).name
