"""The training plan: everything a rank needs, written as JSON by the launcher, read by each rank."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: networks over token ids (``models.networks.TOKEN_INPUTS``, kept here so planning needs no TensorFlow)
TOKEN_NETWORKS = ("text_transformer",)


@dataclass(frozen=True, kw_only=True)
class TrainPlan:
    store: str                      # path of the dataset's data.zarr
    dataset_version: str            # NAME@VERSION, recorded for lineage
    ranges: dict[str, list[int]]    # split -> [start, stop) in the store
    input_shape: list[int]          # one sample of ``x_var``, e.g. [28, 28, 1] or [48]
    n_classes: int
    run_dir: str
    network: str = "cnn"
    epochs: int = 8
    batch_size: int = 64
    learning_rate: float = 1e-3
    compression: str = "fp16"       # see models.compression.parse
    threads_per_rank: int = 1
    shuffle_buffer: int = 4096
    read_threads: int = 4           # parallel Zarr chunk reads per rank
    checkpoint_every: int = 0       # steps between mid-epoch checkpoints; 0 = at epoch ends only
    resume: bool = False            # continue from the run's last checkpoint
    seed: int = 0
    x_var: str = "image"            # the store's input variable: "image", or "tokens" (text)
    vocab_size: int = 0             # token ids are below it (text); 0 for images
    # The dataset's feature transform, exported with the model: raw record -> model input.
    transform: dict = field(default_factory=dict)

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: Path) -> "TrainPlan":
        return cls(**json.loads(Path(path).read_text()))
