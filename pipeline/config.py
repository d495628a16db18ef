"""Typed configuration of a dcpipe job, loaded and validated once.

Every section is a frozen pydantic model that forbids unknown keys. ``dump_yaml(JobConfig())`` is
what ``dcpipe config`` prints and exactly what ``load_config`` reads back.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.errors import UserError

EMBEDDED_MNIST = "embedded:mnist_5k"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetConfig(_Section):
    name: str = Field("mnist", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                      description="dataset name; versions are stored under datasets/<name>/")


SOURCE_KINDS = ("csv", "tsv", "parquet", "jsonl", "text", "images", "sql", "xarray")


class SourceConfig(_Section):
    kind: Literal["csv", "tsv", "parquet", "jsonl", "text", "images", "sql", "xarray"] = Field(
        "csv", description="which reader in pipeline/sources/ (see docs/ingest.md)")
    path: str = Field(EMBEDDED_MNIST, description=f"file, glob, fsspec URL, folder (images), SQLAlchemy "
                                                  f"URL (sql), or {EMBEDDED_MNIST!r}")
    delimiter: str = Field(",", min_length=1, max_length=1, description="csv only; tsv always uses a tab")
    blocksize: int = Field(64 << 20, ge=1 << 10, description="bytes per partition of an uncompressed text file")
    text_mode: Literal["line", "file"] = Field("line", description="text: one record per line or per file")
    query: str | None = Field(None, description="sql: a table name or a SELECT statement")
    order_by: str | None = Field(None, description="sql: column giving a stable row order; enables partitions")
    rows_per_partition: int = Field(50_000, gt=0, description="sql and images: records per partition")
    values_var: str = Field("image", description="xarray: the variable holding the values (sample first)")
    label_var: str = Field("label", description="xarray: the variable holding the labels")


class SchemaConfig(_Section):
    n_fields: int = Field(785, gt=1, description="fields per row: values plus the label")
    columns: list[str] | None = Field(None, description="field names in order (label included); "
                                                        "null = positional, or the header when header is true")
    header: bool = Field(False, description="csv/tsv: the first line of each file names the fields")
    label_column: int | str = Field(-1, description="the label field: a position (-1 is the last) or a name")
    labels: list[int] | list[str] = Field(default_factory=lambda: list(range(10)), min_length=2)
    dtype: Literal["int", "float"] = Field("int", description="value type; int values must be integral")
    value_min: float = 0
    value_max: float = 255
    image_shape: tuple[int, int, int] = (28, 28, 1)

    @model_validator(mode="after")
    def _shape_matches_fields(self) -> "SchemaConfig":
        h, w, c = self.image_shape
        if min(self.image_shape) < 1 or h * w * c != self.n_fields - 1:
            raise ValueError(
                f"image_shape {list(self.image_shape)} holds {h * w * c} values but n_fields - 1 = "
                f"{self.n_fields - 1}; e.g. [28, 28, 1] with n_fields 785")
        if self.columns is not None and len(self.columns) != self.n_fields:
            raise ValueError(f"columns lists {len(self.columns)} names but n_fields is {self.n_fields}")
        if self.columns is not None and len(set(self.columns)) != len(self.columns):
            raise ValueError("columns has repeated names; give each field a distinct name")
        if isinstance(self.label_column, str):
            if self.columns is not None and self.label_column not in self.columns:
                raise ValueError(f"label_column {self.label_column!r} is not in columns {self.columns[:5]}...")
            if self.columns is None and not self.header:
                raise ValueError(f"label_column {self.label_column!r} is a name: set columns, or header: true")
        elif not -self.n_fields <= self.label_column < self.n_fields:
            raise ValueError(f"label_column {self.label_column} is outside the {self.n_fields} fields")
        if self.value_min >= self.value_max:
            raise ValueError(f"value_min {self.value_min} must be below value_max {self.value_max}")
        return self

    def label_index(self, names: list[str] | None = None) -> int:
        """Position of the label among the fields; ``names`` are the fields when known (a header)."""
        names = self.columns or names
        if isinstance(self.label_column, str):
            if not names or self.label_column not in names:
                raise UserError(f"schema.label_column {self.label_column!r} is not among the fields "
                                f"{(names or [])[:8]}; name one of them")
            return names.index(self.label_column)
        return self.label_column % self.n_fields

    @property
    def label_names(self) -> list[str]:
        return [str(v) for v in self.labels]


class MissingPolicy(_Section):
    strategy: Literal["drop", "mean", "median", "constant"] = Field(
        "drop", description="drop quarantines rows with a missing value (missing_value); the others impute")
    fill_value: float = Field(0.0, description="the value imputed by strategy constant")


class OutlierPolicy(_Section):
    method: Literal["none", "zscore", "iqr"] = "none"
    action: Literal["drop", "clip", "flag"] = Field("drop", description="drop quarantines (outlier)")
    z_threshold: float = Field(4.0, gt=0)
    iqr_factor: float = Field(1.5, gt=0)


class TextPolicy(_Section):
    nfkc: bool = True
    lower: bool = True
    whitespace: bool = Field(True, description="collapse runs of whitespace, strip the ends")
    drop_empty: bool = Field(True, description="quarantine records empty after normalising (empty_text)")
    mask: list[Literal["email", "phone", "ip", "digits"]] = Field(
        default_factory=lambda: ["email", "phone", "ip", "digits"], description="personal data to mask")


class CleanConfig(_Section):
    missing: MissingPolicy = MissingPolicy()
    duplicates: Literal["drop", "keep"] = Field("drop", description="exact duplicates across all partitions")
    outliers: OutlierPolicy = OutlierPolicy()
    text: TextPolicy = TextPolicy()


class GatesConfig(_Section):
    max_quarantined_fraction: float = Field(0.5, ge=0, le=1, description="of records_in; above it the run stops")
    min_rows_per_class: int = Field(1, ge=0, description="rows kept per allowed label; below it the run stops")


class SplitConfig(_Section):
    train: float = Field(0.8, gt=0, lt=1)
    val: float = Field(0.1, ge=0, lt=1)
    test: float = Field(0.1, gt=0, lt=1)

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> "SplitConfig":
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"train + val + test must be 1 (got {total:g}); e.g. 0.8, 0.1, 0.1")
        return self


class AugmentConfig(_Section):
    copies: int = Field(1, ge=0, le=16, description="augmented copies of each train image")
    max_shift: int = Field(2, ge=0, description="largest shift in pixels, each axis")
    max_rotation: float = Field(10.0, ge=0, le=180, description="largest rotation in degrees")
    noise_std: float = Field(0.02, ge=0, description="std of gaussian noise on [0, 1] pixels")


class StoreConfig(_Section):
    chunk_rows: int = Field(512, gt=0, description="samples per Zarr chunk along the sample axis")
    codec: Literal["zstd", "blosc-lz4", "none"] = "zstd"
    level: int = Field(3, ge=0, le=22)


class TrainConfig(_Section):
    network: Literal["cnn"] = "cnn"
    epochs: int = Field(8, gt=0)
    batch_size: int = Field(64, gt=0, description="samples per rank per step")
    learning_rate: float = Field(1e-3, gt=0, description="per-rank rate; scaled by world size")
    compression: Literal["none", "fp16"] = "fp16"
    np: int | None = Field(None, gt=0, description="Horovod ranks; null = one per GPU, else 2")
    threads_per_rank: int = Field(1, gt=0)
    shuffle_buffer: int = Field(4096, gt=0)


class ClusterConfig(_Section):
    workers: int | None = Field(None, gt=0, description="local Dask workers; null = one per core")
    threads_per_worker: int = Field(1, gt=0)
    dashboard_address: str = ":8787"
    memory_limit: str = "auto"


class JobConfig(_Section):
    seed: int = Field(0, ge=0, description="seeds the split, the augmentation and the model")
    dataset: DatasetConfig = DatasetConfig()
    source: SourceConfig = SourceConfig()
    schema_: SchemaConfig = Field(SchemaConfig(), alias="schema")
    clean: CleanConfig = CleanConfig()
    gates: GatesConfig = GatesConfig()
    split: SplitConfig = SplitConfig()
    augment: AugmentConfig = AugmentConfig()
    store: StoreConfig = StoreConfig()
    train: TrainConfig = TrainConfig()
    cluster: ClusterConfig = ClusterConfig()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @property
    def schema(self) -> SchemaConfig:  # noqa: D401 - the section, under its YAML name
        return self.schema_

    def data_part(self) -> dict:
        """The sections that change the stored dataset (not cluster, not training)."""
        full = self.to_dict()
        return {k: full[k] for k in ("seed", "dataset", "source", "schema", "clean", "split", "augment", "store")}

    def to_dict(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)

    def with_overrides(self, **sections) -> "JobConfig":
        """A validated copy with fields replaced: ``with_overrides(train={"np": 4}, seed=1)``."""
        merged = self.to_dict()
        for section, fields in sections.items():
            merged[section] = {**merged[section], **fields} if isinstance(fields, dict) else fields
        return parse_config(merged, origin="overrides")


def _format_error(err: dict, origin: str) -> str:
    path = ".".join(str(p) for p in err["loc"] if p != "__root__") or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"{origin}: unknown key '{path}'; remove it or check its spelling (see `dcpipe config`)"
    got = err.get("input")
    shown = "" if isinstance(got, dict) else f" (got {got!r})"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{origin}: {path}: {msg}{shown}"


def parse_config(data: dict | None, origin: str = "config") -> JobConfig:
    """Validate a mapping into a ``JobConfig``; raise ``UserError`` naming the key path."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{origin}: expected a mapping of sections at the top level (got {type(data).__name__})")
    try:
        return JobConfig.model_validate(data)
    except ValidationError as exc:
        raise UserError(_format_error(exc.errors()[0], origin)) from exc


def load_config(path: str | Path | None) -> JobConfig:
    """Read a YAML config file; ``None`` gives the defaults."""
    if path is None:
        return JobConfig()
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"{path}: config file not found; write one with `dcpipe config > {path.name}`") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read config ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}:{where} is not valid YAML ({getattr(exc, 'problem', exc)})") from None
    return parse_config(data, origin=str(path))


def dump_yaml(cfg: JobConfig) -> str:
    """The config as YAML that ``load_config`` accepts unchanged."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=False)
