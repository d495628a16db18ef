"""The training plan: everything a rank needs, written as JSON by the launcher, read by each rank.

A plan is the run's :class:`models.config.TrainConfig` (the training settings, written once, in
one place) plus the facts of the dataset version it trains on. Built by the application layer::

    TrainPlan(train=cfg.train, seed=cfg.seed, store=..., dataset_version=..., ranges=...,
              input_shape=..., n_classes=..., run_dir=..., x_var=..., vocab_size=..., transform=...)

>>> plan = TrainPlan(train=TrainConfig(epochs=3), store="s", dataset_version="d@v", ranges={},
...                  input_shape=[8], n_classes=2, run_dir="r")
>>> plan.epochs, plan.to_dict()["train"]["epochs"]
(3, 3)
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from models.config import TrainConfig
from models.rundir import atomic_write_text

#: networks over token ids (``models.networks.TOKEN_INPUTS``, kept here so planning needs no TensorFlow)
TOKEN_NETWORKS = ("text_transformer", "lm_transformer")


def _setting(name: str):
    return property(lambda self: getattr(self.train, name), doc=f"``train.{name}``")


@dataclass(frozen=True, kw_only=True)
class TrainPlan:
    train: TrainConfig              # the run's training settings (``logical_shards`` fixed for the run)
    store: str                      # path of the dataset's data.zarr
    dataset_version: str            # NAME@VERSION, recorded for lineage
    ranges: dict[str, list[int]]    # split -> [start, stop) in the store
    input_shape: list[int]          # one sample of ``x_var``, e.g. [28, 28, 1] or [48]
    n_classes: int
    run_dir: str
    seed: int = 0                   # the job's seed (``JobConfig.seed``)
    resume: bool = False            # continue from the run's last checkpoint
    x_var: str = "image"            # the store's input variable: "image", or "tokens" (text)
    vocab_size: int = 0             # token ids are below it (text); 0 for images
    # The dataset's feature transform, exported with the model: raw record -> model input.
    transform: dict = field(default_factory=dict)
    # ``train.init_from`` resolved before any rank starts: the pretrained run's model.keras, whose
    # body rank 0 loads before the broadcast (fine-tuning); None = from scratch.
    init_model: str | None = None

    # Read-only views of the settings, so a rank writes ``plan.epochs``; the values live in ``train``.
    network, epochs, batch_size, learning_rate = map(_setting, ("network", "epochs", "batch_size", "learning_rate"))
    compression, threads_per_rank, shuffle_buffer = map(_setting, ("compression", "threads_per_rank",
                                                                   "shuffle_buffer"))
    read_threads, checkpoint_every, logical_shards = map(_setting, ("read_threads", "checkpoint_every",
                                                                    "logical_shards"))

    @property
    def causal(self) -> bool:
        """An ``lm_transformer`` classifier attends causally: ``train.attention: causal``, which
        ``auto`` becomes when fine-tuning a ``causal_lm`` body (:func:`pipeline.pretrained.resolve`)."""
        return self.train.attention == "causal"

    def with_train(self, **changes) -> "TrainPlan":
        """The plan with some training settings changed (validated again)."""
        return replace(self, train=TrainConfig(**{**self.train.model_dump(), **changes}))

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"train": self.train.model_dump()}

    def save(self, path: Path) -> Path:
        """Write the plan as JSON, atomically (a rank never reads half of one)."""
        return atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, raw: dict) -> "TrainPlan":
        """A plan from :meth:`to_dict`, or from a plan written before the settings moved into
        ``train`` (flat keys; such a run keeps the one logical shard order it never had: 8)."""
        raw = dict(raw)
        if "train" not in raw:
            names = set(TrainConfig.model_fields)
            raw["train"] = {k: raw.pop(k) for k in list(raw) if k in names}
        return cls(**{**raw, "train": TrainConfig(**raw["train"])})

    @classmethod
    def load(cls, path: Path) -> "TrainPlan":
        return cls.from_dict(json.loads(Path(path).read_text()))
