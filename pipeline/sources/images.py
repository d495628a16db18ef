"""A folder of PNG/JPEG images labelled by sub-folder: ``<path>/<label>/<file>.png``.

Each image is one record (``source`` = its path under the folder, ``line`` = 1, ``raw`` = that
path); its pixels, row-major, are the values. An image whose size or channel count differs from
``schema.image_shape`` is ``wrong_field_count``; one that cannot be decoded is ``malformed``.
"""
from __future__ import annotations

import dask.dataframe as dd
import numpy as np
from dask import delayed
from PIL import Image, UnidentifiedImageError

from pipeline.config import SchemaConfig, SourceConfig
from pipeline.errors import UserError
from pipeline.sources.base import Ingested, make_records, records_meta, register
from pipeline.sources.files import InputFile, resolve

SUFFIXES = (".png", ".jpg", ".jpeg")


def _decode(f: InputFile, shape: tuple[int, int, int]) -> tuple[np.ndarray | None, str | None]:
    h, w, c = shape
    try:
        with f.fs.open(f.path, "rb") as fh, Image.open(fh) as img:
            if img.size != (w, h) or len(img.getbands()) != c:
                return None, "wrong_field_count"
            return np.asarray(img, dtype="float64").reshape(-1), None
    except (UnidentifiedImageError, OSError, ValueError):
        return None, "malformed"


def _read_images(files: list[InputFile], schema: SchemaConfig):
    n_values = schema.n_fields - 1
    values = np.full((len(files), n_values), np.nan)
    reason = np.full(len(files), None, dtype=object)
    for i, f in enumerate(files):
        pixels, reason[i] = _decode(f, schema.image_shape)
        if pixels is not None:
            values[i] = pixels
    names = np.array([f.name for f in files], dtype=object)
    labels = [n.split("/")[-2] if "/" in n else None for n in names]
    return make_records(names, np.ones(len(files)), names.tolist(), reason, labels, values)


@register("images")
def read_images(cfg: SourceConfig, schema: SchemaConfig) -> Ingested:
    root = cfg.path.rstrip("/")
    files = [f for f in resolve(f"{root}/*/*", what="image folder") if f.path.lower().endswith(SUFFIXES)]
    if not files:
        raise UserError(f"{cfg.path}: no .png/.jpg/.jpeg images in sub-folders; lay them out as "
                        "<path>/<label>/<file>.png")
    files = [InputFile(f.fs, f.path, "/".join(f.path.split("/")[-2:]), f.size) for f in files]
    step = cfg.rows_per_partition
    parts = [delayed(_read_images, pure=True)(files[i:i + step], schema) for i in range(0, len(files), step)]
    records = dd.from_delayed(parts, meta=records_meta(schema.n_fields - 1), verify_meta=False)
    return Ingested(records, [f.describe() for f in files])
