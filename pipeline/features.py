"""Features: a deterministic stratified split, then typed rows become an ``xr.Dataset``.

The model input comes from the fitted transform of the job's ``features`` section (empty = the
source's default, :func:`resolve_features`): ``image`` (sample, height, width, channel) from the
``pixels`` transform for tables, ``tokens`` (sample, position; int32 ids, 0 = padding, with a
``vocabulary`` attribute) from the ``sequence`` transform for labelled text. Its JSON is kept in
the dataset's ``features`` attribute, so serving applies the very same transform to raw rows:
``FeatureTransform.from_json(xr.open_zarr(store).attrs["features"]).transform(records)``.

The split of a row depends only on (seed, source file, line number) and its label, never on how
the data is partitioned: each row gets a 64-bit hash, rows of a class are ranked by that hash, and
the first ``train`` fraction of each class goes to train, the next ``val`` to val, the rest to test.
Rows are then ordered by (split, hash), so each split is one contiguous, shuffled range.
"""
from __future__ import annotations

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import xarray as xr
from dask import delayed

from pipeline.config import FeaturesConfig, JobConfig, SchemaConfig, SplitConfig
from pipeline.errors import UserError
from pipeline.transforms import FeatureTransform

SPLITS = ("train", "val", "test")
#: Up to this many partitions the split's sort uses Dask's tasks shuffle: P2P's fixed cost (its
#: scheduler extension, barrier and disk buffers) is seconds, more than a small input's whole sort
#: (`dcpipe prepare` of the 5,000-row default: 20.3 s -> 13.9 s wall, 26.6 -> 17.2 CPU s, the same
#: stored arrays). Above it P2P, whose memory stays bounded where the tasks shuffle makes n^2 pieces.
TASKS_SHUFFLE_UP_TO = 64


def _hash_key(seed: int) -> str:
    return f"dcpipe{seed:010d}"[-16:]


def _row_hash(frame: pd.DataFrame, seed: int) -> pd.Series:
    return pd.util.hash_pandas_object(frame[["source", "line"]], index=False, hash_key=_hash_key(seed))


def _class_cutoffs(keys: pd.DataFrame, cfg: SplitConfig) -> dict[int, tuple[int, int]]:
    """Per label, the last hash (inclusive) of train and of val; -1 when that split is empty."""
    cutoffs = {}
    for label, group in keys.groupby("label"):
        order = np.sort(group["order"].to_numpy())
        n = len(order)
        k_train, k_val = round(cfg.train * n), round((cfg.train + cfg.val) * n)
        cutoffs[int(label)] = tuple(int(order[k - 1]) if k > 0 else -1 for k in (k_train, k_val))
    return cutoffs


def _assign(frame: pd.DataFrame, cutoffs: dict[int, tuple[int, int]]) -> pd.Series:
    split = np.full(len(frame), 2, dtype="int8")
    order = frame["order"].to_numpy()
    for label, (train_last, val_last) in cutoffs.items():
        mine = frame["label"].to_numpy() == label
        split[mine & (val_last >= 0) & (order <= np.uint64(max(val_last, 0)))] = 1
        split[mine & (train_last >= 0) & (order <= np.uint64(max(train_last, 0)))] = 0
    return pd.Series(split, index=frame.index, name="split")


_KEY_BITS = 61  # sort key = split << 61 | hash >> 3: fits int64, ordered by (split, hash)


def _sort_key(frame: pd.DataFrame) -> pd.Series:
    split = frame["split"].to_numpy().astype("uint64")
    key = (split << np.uint64(_KEY_BITS)) | (frame["order"].to_numpy() >> np.uint64(64 - _KEY_BITS))
    return pd.Series(key.astype("int64"), index=frame.index, name="sort_key")


def sort_divisions(cfg: SplitConfig, npartitions: int) -> list[int]:
    """Partition boundaries of the sort key, from the split fractions alone (no pass over data).

    Hashes are uniform and the split goes by hash (:func:`_class_cutoffs`: train the lowest
    ``cfg.train`` of each class's hashes, test the highest), so the keys of split ``s`` fill only
    its share ``[edges[s], edges[s + 1])`` of its ``2**61`` wide band, and the ``q``-quantile of all
    keys is ``s * band + q * band``: boundaries at ``q = i / npartitions`` balance the partitions
    (spread over each whole band, they put all of val, and of test, in a partition or two).
    """
    edges = np.cumsum((0.0, cfg.train, cfg.val, cfg.test))
    band = 1 << _KEY_BITS
    inner = []
    for q in np.linspace(0, 1, npartitions + 1)[1:-1]:
        s = int(np.searchsorted(edges, q, side="right") - 1)
        inner.append(s * band + int(q * band))
    return sorted({0, *inner, 3 * band - 1})


def assign_split(rows: dd.DataFrame, cfg: SplitConfig, seed: int) -> dd.DataFrame:
    """Add ``split`` (0 train, 1 val, 2 test) and order rows by (split, row hash); lazy."""
    rows = rows.assign(order=rows.map_partitions(_row_hash, seed, meta=("order", "uint64"),
                                                 token="features-hash"))
    cutoffs = delayed(_class_cutoffs, name="features-split-cutoffs")(rows[["label", "order"]], cfg)
    rows = rows.assign(split=rows.map_partitions(_assign, cutoffs, meta=("split", "int8"),
                                                 token="features-split"))
    rows = rows.assign(sort_key=rows.map_partitions(_sort_key, meta=("sort_key", "int64")))
    method = "tasks" if rows.npartitions <= TASKS_SHUFFLE_UP_TO else "p2p"
    rows = rows.set_index("sort_key", divisions=sort_divisions(cfg, rows.npartitions), shuffle_method=method)
    return rows.drop(columns=["order"])


def pixel_columns(schema: SchemaConfig) -> list[str]:
    """Names of the pixel columns of a validated row: ``p0`` .. ``p<n_fields - 2>``."""
    return [f"p{i}" for i in range(schema.n_fields - 1)]


def image_features(schema: SchemaConfig) -> FeaturesConfig:
    """The image transform of the main job: pixels scaled from the schema's range to [0, 1]."""
    return FeaturesConfig(groups=[{
        "kind": "pixels", "name": "image", "columns": pixel_columns(schema), "shape": list(schema.image_shape),
        "value_min": schema.value_min, "value_max": schema.value_max}])


def text_features() -> FeaturesConfig:
    """The text transform of a labelled text job: 48 token ids per record from the ``text`` column."""
    return FeaturesConfig(groups=[{"kind": "sequence", "name": "tokens", "columns": ["text"], "length": 48,
                                   "min_frequency": 1, "max_size": 20000}])


def packed_features() -> FeaturesConfig:
    """The default of an unlabelled text job: a BPE tokenizer, documents packed into 128-token sequences."""
    return FeaturesConfig(groups=[{"kind": "packed", "name": "tokens", "columns": ["text"], "length": 128}])


TEXT_KINDS = ("sequence", "subword")    # labelled text; an unlabelled corpus is ``packed``


def is_packed(cfg: JobConfig) -> bool:
    return cfg.source.is_text and not cfg.source.labelled


def _check_text_group(cfg: JobConfig, group: dict) -> None:
    kinds = ("packed",) if is_packed(cfg) else TEXT_KINDS
    if group["kind"] not in kinds or group["name"] != "tokens":
        how = ("an unlabelled text source stores packed sequences" if is_packed(cfg)
               else "a labelled text dataset stores one row of token ids per record")
        raise UserError(f"features.groups[0]: {how} (got {group['kind']} {group['name']!r}); e.g. "
                        f"[{{kind: {kinds[0]}, name: tokens, columns: [text]}}], or [] for the default")
    if is_packed(cfg) and cfg.augment.copies:
        raise UserError(f"augment.copies: packed text sequences are not augmented (got {cfg.augment.copies}); "
                        "set augment.copies: 0")


#: model input variable -> its dims after ``sample``
DIMS = {"image": ("height", "width", "channel"), "tokens": ("position",)}


def resolve_features(cfg: JobConfig) -> FeaturesConfig:
    """The job's features: ``cfg.features``, or the source's default when it lists no groups.

    A dataset stores one model input: a ``pixels`` group named ``image`` (tables, images) or a
    ``sequence`` group named ``tokens`` (text).
    """
    text = cfg.source.is_text
    default = (packed_features() if is_packed(cfg) else text_features()) if text else image_features(cfg.schema)
    groups = cfg.features.groups
    if text and len(groups) <= 1:
        _check_text_group(cfg, (groups or default.groups)[0])
        return cfg.features if groups else default
    if not groups:
        return default
    want = default.groups[0]
    if len(groups) != 1 or (groups[0]["kind"], groups[0]["name"]) != (want["kind"], want["name"]):
        got = ", ".join(f"{g['kind']} {g['name']!r}" for g in groups)
        example = "[text], length: 48" if text else "['p*'], shape: [28, 28, 1]"
        raise UserError(f"features.groups: a {cfg.source.kind} dataset stores one {want['kind']} group named "
                        f"{want['name']!r} (got {got}); e.g. [{{kind: {want['kind']}, name: {want['name']}, "
                        f"columns: {example}}}], or [] for the default")
    if not text:
        _check_image_group(groups[0], want)
    return cfg.features


#: pixels options that must equal the schema's (bundles before ``image_features`` rebuilt them from it)
SERVED_AS_SCHEMA = ("shape", "value_min", "value_max", "resize", "layout")


def _check_image_group(group: dict, schema_group: dict) -> None:
    """An image group must scale pixels as the schema says: serving applies exactly that."""
    differ = {k: group[k] for k in SERVED_AS_SCHEMA if group[k] != schema_group[k]}
    if differ:
        want = {k: schema_group[k] for k in differ}
        raise UserError(f"features.groups[0]: {differ} would train on other images than the serving bundle "
                        f"makes from the schema ({want}); set the schema instead, or leave features.groups empty")


def to_dataset(rows: dd.DataFrame, lengths: tuple[int, ...], cfg: JobConfig,
               sources: list[str]) -> xr.Dataset:
    """The dataset over a ``sample`` dimension: the model input (``image`` as float32 in [0, 1], or
    ``tokens``), ``label``, ``split``, ``source_file``, ``source_line`` and ``augmented``.

    ``lengths`` are the known partition lengths of ``rows`` (the job persists rows to learn them).
    The transform is fitted on the train rows and kept as JSON in the ``features`` attribute.
    """
    schema = cfg.schema
    chunks = (tuple(lengths),)
    fitted = FeatureTransform.fit(rows, resolve_features(cfg))
    if is_packed(cfg):
        return _packed(rows, lengths, cfg, fitted)
    (name, x), = fitted.transform_dask(rows, lengths).items()
    state = fitted.transforms[0].state
    x_attrs = ({"vocabulary": state["vocabulary"]} if "vocabulary" in state else
               {"vocab_size": state["vocab_size"]} if "vocab_size" in state else {})
    col = lambda name, dtype: rows[name].to_dask_array(lengths=list(lengths)).astype(dtype)  # noqa: E731
    source_index = rows["source"].map({s: i for i, s in enumerate(sources)}, meta=("source", "int32"))
    ds = xr.Dataset(
        {
            name: (("sample", *DIMS[name]), x, x_attrs),
            "label": ("sample", col("label", "int16")),
            "split": ("sample", col("split", "int8"),
                      {"flag_values": [0, 1, 2], "flag_meanings": " ".join(SPLITS)}),
            "source_file": ("sample", source_index.to_dask_array(lengths=list(lengths)).astype("int32"),
                            {"description": "index into the manifest's sources list"}),
            "source_line": ("sample", col("line", "int64")),
            "augmented": ("sample", da.zeros(sum(lengths), dtype=bool, chunks=chunks)),
        },
        attrs={"dataset": cfg.dataset.name, "label_names": [str(v) for v in schema.labels],
               "features": fitted.to_json()},
    )
    return ds


def _packed(rows: dd.DataFrame, lengths: tuple[int, ...], cfg: JobConfig, fitted: FeatureTransform) -> xr.Dataset:
    """The packed sequences of an unlabelled corpus (:mod:`pipeline.packing`); counts in ``attrs``."""
    from pipeline.packing import packed_dataset
    from pipeline.store import chunk_rows
    transform = fitted.transforms[0]
    ds, per_split, tokens = packed_dataset(rows, lengths, transform,
                                           chunk_rows(cfg.store, 2 * 4 * transform.length))
    ds["tokens"].attrs["vocab_size"] = transform.state["vocab_size"]
    return ds.assign_attrs(dataset=cfg.dataset.name, label_names=[], features=fitted.to_json(),
                           packed_length=transform.length, sequences=per_split, **tokens)
