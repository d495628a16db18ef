"""The training settings of a job: the one home of every training default.

``pipeline.config.JobConfig.train`` is a :class:`TrainConfig`; ``models.plan.TrainPlan`` carries one,
and the loader and the ranks read their settings from it, so no default is written twice.
This module needs pydantic only (no TensorFlow): ``dcpipe config`` imports it.

>>> TrainConfig().epochs, TrainConfig().logical_shards
(6, 8)
"""
from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# models.compression.parse is the reference; this pattern keeps `dcpipe config` free of TensorFlow.
COMPRESSION_PATTERN = r"^(none|fp16|topk:(0?\.\d*[1-9]\d*|1(\.0*)?)|powersgd:[1-9]\d*)$"


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    network: Literal["cnn", "mlp", "transformer", "text_transformer", "lm_transformer"] = Field(
        "cnn", description="images: cnn, mlp, transformer; token ids (text): text_transformer, lm_transformer")
    # 6: the cosine schedule reaches the 10-epoch accuracy of a hand-written script (bench/main_job.py,
    # 0.972 on the embedded MNIST) with 4 epochs to spare; see bench/RESULTS.md.
    epochs: int = Field(6, gt=0)
    # 128 and 2e-3: the global batch and rate that two ranks of 64 at 1e-3 trained with before one CPU
    # rank became the default (same 0.982 on the embedded MNIST; bench/RESULTS.md, issue 18).
    batch_size: int = Field(128, gt=0, description="samples per rank per step")
    learning_rate: float = Field(2e-3, gt=0, description="per-rank rate; scaled by world size")
    compression: str = Field("fp16", description="none, fp16, topk:RATIO (e.g. topk:0.01) or powersgd:RANK "
                                                 "(e.g. powersgd:4)")
    # One CPU rank per node: on 2 cores one rank of 2 threads trains the default 1.5x faster than two
    # ranks of one (no allreduce, one TensorFlow import; bench/RESULTS.md, issue 18).
    np: int | None = Field(None, gt=0, description="Horovod ranks; null = one per GPU, else one (CPU)")
    threads_per_rank: int | None = Field(None, gt=0, description="CPU threads of each rank; null = the node's "
                                                                 "cores / its ranks (models.launch.default_threads)")
    shuffle_buffer: int = Field(4096, gt=0)
    read_threads: int = Field(4, gt=0, description="parallel Zarr chunk reads per rank")
    checkpoint_every: int = Field(0, ge=0, description="steps between mid-epoch checkpoints; 0 = epoch ends only")
    max_restarts: int = Field(2, ge=0, description="restarts of the ranks from the last checkpoint after a failure")
    min_np: int | None = Field(None, gt=0, description="smallest world size a restart on fewer hosts may use; "
                                                       "null = np")
    logical_shards: int = Field(8, gt=0, description="fixed per run: the sample order depends on the seed and "
                                "this, not on the world size; a world size that divides it reads each chunk "
                                "once (raised to np when np is larger)")

    objective: Literal["causal_lm", "masked_lm", "classify"] = Field(
        "classify", description="classify: labels; causal_lm / masked_lm: pretrain on a packed text store "
                                "(network lm_transformer)")
    init_from: str | None = Field(None, description="fine-tune from this finished run's weights (its body); "
                                                    "null = from scratch")
    attention: Literal["auto", "causal", "bidirectional"] = Field(
        "auto", description="an lm_transformer classifier's self-attention: causal (each token sees the ones "
                            "before it) or bidirectional; auto = the way its train.init_from body was pretrained "
                            "(causal after causal_lm), bidirectional from scratch")

    @model_validator(mode="after")
    def _objective_fits_network(self) -> "TrainConfig":
        if self.objective != "classify" and self.network != "lm_transformer":
            raise ValueError(f"train.objective: {self.objective} needs train.network: lm_transformer "
                             f"(got {self.network}); set train.network: lm_transformer")
        if self.attention != "auto" and (self.network != "lm_transformer" or self.objective != "classify"):
            raise ValueError(f"train.attention: {self.attention} applies to an lm_transformer classifier only "
                             f"(train.network {self.network}, train.objective {self.objective}; causal_lm attends "
                             "causally, masked_lm both ways); remove train.attention")
        return self

    @field_validator("compression")
    @classmethod
    def _known_compression(cls, value: str) -> str:
        if not re.match(COMPRESSION_PATTERN, value):
            raise ValueError("must be none, fp16, topk:RATIO with 0 < RATIO <= 1 or powersgd:RANK with "
                             "RANK >= 1; e.g. topk:0.01")
        return value
