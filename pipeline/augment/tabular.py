"""Tabular augmentations of a block of numeric feature rows (samples, features)."""
from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.augment.registry import BlockOp, SampleOp, check, register


@register("feature_noise")
@dataclasses.dataclass(frozen=True, kw_only=True)
class FeatureNoise(SampleOp):
    """Add gaussian noise of ``std`` to every feature (features are assumed scaled, e.g. standard)."""

    modality = "tabular"
    std: float = 0.05

    def __post_init__(self):
        check(self.std >= 0, f"std must be >= 0 (got {self.std}); e.g. 0.05")

    def __call__(self, row, rng):
        return (row + rng.normal(0.0, self.std, size=row.shape)).astype(row.dtype)


@register("mixup")
@dataclasses.dataclass(frozen=True, kw_only=True)
class Mixup(BlockOp):
    """Mix each row with a random row of its block: ``lam * x_i + (1 - lam) * x_j``.

    ``lam`` ~ Beta(alpha, alpha), folded to ``max(lam, 1 - lam)`` so row ``i`` dominates and keeps
    its label (labels are hard class ids in the store, so they are not mixed).
    """

    modality = "tabular"
    alpha: float = 0.2

    def __post_init__(self):
        check(self.alpha > 0, f"alpha must be > 0 (got {self.alpha}); e.g. 0.2")

    def apply_block(self, block, rng):
        if len(block) == 0:
            return block
        partner = rng.permutation(len(block))
        lam = rng.beta(self.alpha, self.alpha, size=len(block))
        lam = np.maximum(lam, 1 - lam).reshape((-1,) + (1,) * (block.ndim - 1))
        return (lam * block + (1 - lam) * block[partner]).astype(block.dtype)
