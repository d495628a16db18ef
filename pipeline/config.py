"""Typed configuration of a dcpipe job, loaded and validated once.

Every section is a frozen pydantic model that forbids unknown keys. ``dump_yaml(JobConfig())`` is
what ``dcpipe config`` prints and exactly what ``load_config`` reads back.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from models.config import COMPRESSION_PATTERN, TrainConfig  # noqa: F401 - the training settings' one home
from pipeline import credentials
from pipeline.errors import UserError

EMBEDDED_MNIST = "embedded:mnist_5k"
ClusterKind = Literal["local", "address", "slurm", "kubernetes"]
CLUSTER_KINDS: tuple[str, ...] = get_args(ClusterKind)


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
    delimiter: str = Field(",", min_length=1, max_length=1, description="csv, and labelled text lines "
                           "(LABEL, delimiter, TEXT; e.g. \"\\t\"); tsv always uses a tab")
    blocksize: int = Field(64 << 20, ge=1 << 10, description="bytes per partition of an uncompressed text file")
    text_mode: Literal["line", "file"] = Field("line", description="text: one record per line or per file")
    labelled: bool = Field(False, description="text: LABEL<delimiter>TEXT lines, or <label>/<file> (file mode)")
    query: str | None = Field(None, description="sql: a table name or a SELECT statement")
    order_by: str | None = Field(None, description="sql: column giving a stable row order; enables partitions")
    rows_per_partition: int = Field(50_000, gt=0, description="sql and images: records per partition")
    values_var: str = Field("image", description="xarray: the variable holding the values (sample first)")
    label_var: str = Field("label", description="xarray: the variable holding the labels")
    text_field: str | None = Field(None, description="jsonl, parquet: read this field as a text record "
                                   "(source, line, raw, text)")
    label_field: str = Field("label", description="jsonl, parquet with text_field and labelled: the label's field")


    @property
    def is_text(self) -> bool:
        """Records of text (a ``text`` column): a text source, or a jsonl/parquet field named by ``text_field``."""
        return self.kind == "text" or self.text_field is not None

    @model_validator(mode="after")
    def _text_field_kind(self) -> "SourceConfig":
        if self.text_field is not None and self.kind not in ("jsonl", "parquet"):
            raise ValueError(f"text_field is read from jsonl or parquet sources, not {self.kind}; "
                             "remove it, or set kind: jsonl / parquet")
        return self


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
    drop_empty: bool = Field(True, description="quarantine records with no word character after normalising "
                                               "(empty_text)")
    mask: list[Literal["email", "phone", "ip", "digits"]] = Field(
        default_factory=lambda: ["email", "phone", "ip", "digits"], description="personal data to mask")


class NearDuplicatePolicy(_Section):
    """MinHash + LSH near-duplicates of text records (pipeline/clean/near_duplicates.py, docs/text.md)."""
    threshold: float = Field(0.8, gt=0, lt=1, description="estimated Jaccard similarity at or above which "
                             "two records are near-duplicates")
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations (signature length)")
    ngram: int = Field(5, ge=1, le=64, description="character n-grams (shingles) of the cleaned text")


class QualityPolicy(_Section):
    """Gopher/C4-style document filters (pipeline/clean/quality.py); null turns a check off."""
    min_words: int | None = Field(None, ge=0, description="too_few_words below it (Gopher: 50)")
    max_words: int | None = Field(100_000, gt=0, description="too_many_words above it")
    min_mean_word_length: float | None = Field(None, ge=0, description="mean_word_length below it (Gopher: 3)")
    max_mean_word_length: float | None = Field(10.0, gt=0, description="mean_word_length above it")
    max_symbol_ratio: float | None = Field(0.1, ge=0, description="symbol_ratio: '#' and '...' per word")
    max_non_letter_ratio: float | None = Field(None, ge=0, le=1, description="non_letter_ratio: share of "
                                               "words without a letter (Gopher: 0.2)")
    max_repeated_line_fraction: float | None = Field(0.3, ge=0, le=1, description="repeated_lines: share "
                                                     "of lines that repeat an earlier line")
    max_top_ngram_fraction: dict[int, float] = Field(
        default_factory=lambda: {2: 0.2, 3: 0.18, 4: 0.16},
        description="repeated_ngrams: characters in the most frequent word n-gram / all, per n")
    max_duplicate_ngram_fraction: dict[int, float] = Field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10},
        description="duplicate_ngrams: characters in word n-grams seen more than once / all, per n")
    language: Literal["en"] | None = Field(None, description="language: en = at least 2 of Gopher's "
                                           "English stop words (the, be, to, of, and, that, have, with)")


class CleanConfig(_Section):
    missing: MissingPolicy = MissingPolicy()
    duplicates: Literal["drop", "keep"] = Field("drop", description="exact duplicates across all partitions")
    outliers: OutlierPolicy = OutlierPolicy()
    text: TextPolicy = TextPolicy()
    near_duplicates: NearDuplicatePolicy | None = Field(None, description="text: e.g. {threshold: 0.8, "
                                                        "num_perm: 128, ngram: 5}; null = off")
    quality: QualityPolicy | None = Field(None, description="text: document quality filters, e.g. {} for "
                                          "the defaults; null = off")


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


def _default_augment_ops() -> list[dict]:
    """MNIST-safe defaults: small rotation, shift and noise; no flips (digits are not mirror-invariant)."""
    return [{"op": "rotate", "max_degrees": 10.0}, {"op": "shift", "max_pixels": 2},
            {"op": "gaussian_noise", "std": 0.02}]


class AugmentConfig(_Section):
    copies: int = Field(2, ge=0, le=16, description="augmented copies of each train sample")
    ops: list[dict] = Field(default_factory=_default_augment_ops,
                            description="ops applied in order to each copy; see docs/features.md")

    @field_validator("ops")
    @classmethod
    def _ops_are_registered(cls, ops: list[dict]) -> list[dict]:
        from pipeline.augment.registry import build_all  # late: the ops import this module's package
        try:
            return [op.to_dict() for op in build_all(ops)]
        except ValueError as exc:  # the error path already names augment.ops
            raise ValueError(str(exc).removeprefix("augment.ops").lstrip(": ")) from None


class FeaturesConfig(_Section):
    """Column groups for ``pipeline.transforms.FeatureTransform`` (the job's ``features`` section).

    Empty groups = the source's default (``pipeline.features.resolve_features``): the ``pixels``
    transform from the schema for tables, a ``sequence`` transform of the ``text`` column for text.
    """

    groups: list[dict] = Field(default_factory=list,
                               description="[] = the source's default; else e.g. [{kind: sequence, name: tokens, "
                                           "columns: [text], length: 48}]; see docs/features.md")

    @field_validator("groups")
    @classmethod
    def _groups_are_registered(cls, groups: list[dict]) -> list[dict]:
        from pipeline.transforms.base import build  # late: transforms are a layer above config
        built = [build(g, f"[{i}]") for i, g in enumerate(groups)]
        names = [t.name for t in built]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise ValueError(f"group name {dup!r} is used twice; give each group its own name")
        return [{k: v for k, v in t.to_dict().items() if k != "state"} for t in built]

    def build(self) -> list:
        """Unfitted transforms, in order."""
        from pipeline.transforms.base import build
        return [build(g, f"features.groups[{i}]") for i, g in enumerate(self.groups)]


class StoreConfig(_Section):
    chunk_bytes: int = Field(4 << 20, gt=0, description="target uncompressed bytes per chunk of the widest "
                             "variable (the image), cut along the sample axis; see docs/store.md")
    chunk_rows: int | None = Field(None, gt=0, description="samples per chunk; overrides chunk_bytes when set")
    codec: Literal["zstd", "lz4", "blosc-lz4", "blosc-zstd", "none"] = "zstd"
    level: int = Field(3, ge=0, le=22, description="compression level (blosc: at most 9; lz4: acceleration)")
    image_dtype: Literal["uint8", "float32"] = Field(
        "uint8", description="uint8 stores image values in [0, 1] as k/255 (CF scale_factor; a quarter of "
                             "float32's bytes, decoded to float32 by xarray and the loader); float32 as is")


class TLSConfig(_Section):
    """Client certificates for a ``tls://`` scheduler (distributed's ``Security``)."""
    ca_file: str = Field(description="PEM file of the CA that signed the scheduler's certificate")
    cert: str = Field(description="PEM file of this client's certificate")
    key: str | None = Field(None, description="PEM file of the client's key; null = inside cert")


class SlurmClusterConfig(_Section):
    """dask-jobqueue ``SLURMCluster``: each SLURM job runs ``processes`` Dask workers."""
    queue: str | None = Field(None, description="partition (#SBATCH -p); null = the default one")
    account: str | None = Field(None, description="#SBATCH -A; null = none")
    cores: int = Field(1, gt=0, description="cores per job")
    processes: int = Field(1, gt=0, description="Dask workers per job")
    memory: str = Field("4GB", description="memory per job, e.g. 4GB")
    walltime: str = Field("01:00:00", description="#SBATCH -t")
    minimum_jobs: int = Field(1, ge=0, description="adaptive: jobs kept when idle")
    maximum_jobs: int = Field(4, gt=0, description="adaptive: most jobs at once")
    job_extra_directives: list[str] = Field(default_factory=list, description="extra #SBATCH lines")
    job_script_prologue: list[str] = Field(default_factory=list, description="shell lines before the worker")
    log_directory: str | None = Field(None, description="where worker jobs write their logs")

    @model_validator(mode="after")
    def _min_below_max(self) -> "SlurmClusterConfig":
        if self.minimum_jobs > self.maximum_jobs:
            raise ValueError(f"minimum_jobs {self.minimum_jobs} is above maximum_jobs {self.maximum_jobs}")
        return self


class KubernetesClusterConfig(_Section):
    """The Dask Kubernetes operator's ``KubeCluster`` (needs the operator in the cluster)."""
    name: str = Field("dcpipe", pattern=r"^[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?$")
    namespace: str | None = Field(None, description="null = the current context's namespace")
    image: str = Field("dcpipe:cpu", description="image with dcpipe installed (deploy/docker/)")
    n_workers: int = Field(2, ge=0)
    maximum_workers: int | None = Field(None, gt=0, description="adaptive up to this; null = fixed")
    cpu: str = Field("1", description="CPU request and limit per worker")
    memory: str = Field("4Gi", description="memory request and limit per worker")
    claim: str | None = Field("dcpipe-data", description="PersistentVolumeClaim the workers mount "
                              "(deploy/k8s/pvc.yaml); null = none")
    mount_path: str = Field("/data", description="where the claim is mounted; put --workdir under it")


class ClusterConfig(_Section):
    kind: ClusterKind = Field(
        "local", description="where the Dask workers come from; `dcpipe run --cluster KIND`")
    workers: int | None = Field(None, gt=0, description="local: workers to start, null = one per core; "
                                "address: workers to wait for, null = 1")
    threads_per_worker: int = Field(1, gt=0)
    dashboard_address: str = ":8787"
    memory_limit: str = "auto"
    address: str | None = Field(None, description="address: tcp:// or tls:// scheduler; "
                                "null = scheduler_file, else $DASK_SCHEDULER_ADDRESS")
    scheduler_file: str | None = Field(None, description="address: a `dask scheduler --scheduler-file`")
    tls: TLSConfig | None = Field(None, description="address: certificates for a tls:// scheduler")
    wait_for_workers: float = Field(300, gt=0, description="seconds to wait for the first worker")
    slurm: SlurmClusterConfig = SlurmClusterConfig()
    kubernetes: KubernetesClusterConfig = KubernetesClusterConfig()


class ServeConfig(_Section):
    """``dcpipe serve``: the HTTP address, the dynamic batcher and the response cache (docs/serving.md)."""
    host: str = Field("127.0.0.1", description="address to listen on; 0.0.0.0 for every interface")
    port: int = Field(8500, ge=0, le=65535, description="TCP port; 0 = any free port")
    max_batch_size: int = Field(32, ge=1, le=4096, description="most instances in one model call; "
                                "batches are padded to powers of two up to it; 1 = no batching")
    max_wait_ms: float = Field(2.0, ge=0, le=10_000, description="how long the first request of a batch "
                               "waits for others before the batch runs")
    max_queue: int = Field(256, ge=1, description="requests waiting for the model; one more is answered 503 at once")
    cache_size: int = Field(10_000, ge=0, description="answers kept per process (LRU, keyed by bundle hash "
                            "and instance bytes); 0 = no cache")


def _default_space() -> dict:
    return {"train.learning_rate": {"log_uniform": [1.0e-4, 1.0e-2]}, "train.batch_size": {"choice": [32, 64, 128]},
            "train.network": {"choice": ["cnn", "mlp"]}}


class TuneConfig(_Section):
    """``dcpipe tune``: an Optuna study over the config's keys (docs/tuning.md)."""
    study: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                              description="study name, stored under studies/<name>/; null = dataset.name")
    trials: int = Field(20, gt=0, description="finished trials the study should hold (pruned ones count)")
    sampler: Literal["tpe", "random", "cmaes", "nsga2"] = Field(
        "tpe", description="tpe (Bayesian), random, cmaes (evolution strategy), nsga2 (genetic)")
    pruner: Literal["hyperband", "successive_halving", "none"] = Field(
        "hyperband", description="stops poor trials early on the val accuracy reported each epoch")
    np: int = Field(1, gt=0, description="Horovod ranks per trial (train.np of every trial)")
    prepare: bool = Field(False, description="true: data-side keys may vary; each distinct data config is "
                          "prepared once")
    seed: int = Field(0, ge=0, description="seeds the sampler")
    space: dict = Field(default_factory=_default_space, description="KEY: {log_uniform|uniform|int|choice: ...}")

    @field_validator("space")
    @classmethod
    def _space_parses(cls, space: dict, info) -> dict:
        from pipeline.tune.space import parse_space   # late: the tune package is a layer above config
        if not space:
            raise ValueError("is empty; give at least one key, "
                             "e.g. train.learning_rate: {log_uniform: [1.0e-4, 1.0e-2]}")
        parse_space(space, prepare=info.data.get("prepare", False))
        return space


class JobConfig(_Section):
    seed: int = Field(0, ge=0, description="seeds the split, the augmentation and the model")
    dataset: DatasetConfig = DatasetConfig()
    source: SourceConfig = SourceConfig()
    schema_: SchemaConfig = Field(SchemaConfig(), alias="schema")
    clean: CleanConfig = CleanConfig()
    gates: GatesConfig = GatesConfig()
    split: SplitConfig = SplitConfig()
    features: FeaturesConfig = FeaturesConfig()
    augment: AugmentConfig = AugmentConfig()
    store: StoreConfig = StoreConfig()
    train: TrainConfig = TrainConfig()
    cluster: ClusterConfig = ClusterConfig()
    serve: ServeConfig = ServeConfig()
    tune: TuneConfig = TuneConfig()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _space_values_fit(self) -> "JobConfig":
        from pipeline.tune.space import check_values
        # The default space is for image classifiers (it tries train.network: cnn, mlp): it is checked
        # when a study starts (pipeline.tune.search), so a language-model config stays valid.
        if "tune" in self.model_fields_set and self.tune.space != _default_space():
            check_values(self, self.tune.space)
        return self

    @property
    def schema(self) -> SchemaConfig:  # noqa: D401 - the section, under its YAML name
        return self.schema_

    def data_part(self) -> dict:
        """The sections that change the stored dataset (not cluster, not training); passwords masked."""
        full = _masked(self.to_dict())
        return {k: full[k] for k in ("seed", "dataset", "source", "schema", "clean", "split", "features", "augment",
                                    "store")}

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
    if path == "(top level)" and err["msg"].startswith("Value error, tune.space"):   # names its own key
        return f"{origin}: {err['msg'].removeprefix('Value error, ')}"
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
    return parse_config(relative_to(data, path.resolve().parent), origin=str(path))


#: config fields that name files: a relative one in a config file is relative to that file
PATH_FIELDS = (("source", "path"), ("cluster", "scheduler_file"), ("cluster", "tls", "ca_file"),
               ("cluster", "tls", "cert"), ("cluster", "tls", "key"), ("cluster", "slurm", "log_directory"))


def _is_relative_path(value) -> bool:
    return (isinstance(value, str) and bool(value) and "://" not in value and not value.startswith("embedded:")
            and not Path(value).expanduser().is_absolute() and not value.startswith("~"))


def relative_to(data, folder: Path):
    """``data`` (a config mapping) with its relative file paths made relative to ``folder``.

    >>> relative_to({"source": {"path": "data/x.csv"}}, Path("/cfg"))
    {'source': {'path': '/cfg/data/x.csv'}}
    """
    if not isinstance(data, dict):
        return data
    out = dict(data)
    for keys in PATH_FIELDS:
        parent = out
        for key in keys[:-1]:
            if not isinstance(parent.get(key), dict):
                break
            parent[key] = parent = dict(parent[key])
        else:
            if _is_relative_path(parent.get(keys[-1])):
                parent[keys[-1]] = str(folder / parent[keys[-1]])
    return out


def _masked(data: dict) -> dict:
    """``data`` (``JobConfig.to_dict()``) with any password in ``source.path`` masked."""
    return {**data, "source": {**data["source"], "path": credentials.mask(data["source"]["path"])}}


def dump_yaml(cfg: JobConfig) -> str:
    """The config as YAML that ``load_config`` accepts unchanged, except that a password written in
    ``source.path`` is masked (``***``); ``${VAR}`` references are kept, see ``pipeline.credentials``."""
    return yaml.safe_dump(_masked(cfg.to_dict()), sort_keys=False, default_flow_style=False)
