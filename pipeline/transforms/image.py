"""Images from pixel columns: scale to [0, 1], optional bilinear resize, channel layout."""
from __future__ import annotations

import dataclasses
import fnmatch

import numpy as np
from scipy import ndimage

from pipeline.transforms.base import Transform, check, register


@register("pixels")
@dataclasses.dataclass(frozen=True, kw_only=True)
class Pixels(Transform):
    """``columns`` may hold glob patterns (``["p*"]``); they are resolved against the train frame
    and stored (in frame order), so serving reads the same columns in the same order."""

    shape: tuple[int, int, int] = (28, 28, 1)
    value_min: float = 0.0
    value_max: float = 255.0
    resize: tuple[int, int] | None = None
    layout: str = "channels_last"

    def __post_init__(self):
        check(len(self.shape) == 3 and min(self.shape) >= 1, f"shape must be 3 positive ints (got {list(self.shape)})")
        check(self.value_min < self.value_max, f"value_min {self.value_min} must be below value_max {self.value_max}")
        check(self.resize is None or (len(self.resize) == 2 and min(self.resize) >= 1),
              f"resize must be null or 2 positive ints (got {self.resize!r})")
        check(self.layout in ("channels_last", "channels_first"),
              f"layout must be channels_last or channels_first (got {self.layout!r})")

    def fit_state(self, frame):
        cols = [c for c in frame.columns if any(fnmatch.fnmatchcase(str(c), p) for p in self.columns)]
        h, w, ch = self.shape
        check(len(cols) == h * w * ch, f"features.{self.name}: columns {self.columns} match {len(cols)} "
              f"columns but shape {list(self.shape)} needs {h * w * ch}")
        return {"columns": cols}

    def transform(self, frame):
        raw = frame[self.state["columns"]].to_numpy(dtype="float32")
        scale = np.float32(1.0 / (self.value_max - self.value_min))
        images = ((raw - np.float32(self.value_min)) * scale).reshape((-1, *self.shape))
        if self.resize is not None:
            zoom = (1, self.resize[0] / self.shape[0], self.resize[1] / self.shape[1], 1)
            images = ndimage.zoom(images, zoom, order=1, grid_mode=True, mode="nearest").astype("float32")
        return np.ascontiguousarray(images.transpose(0, 3, 1, 2)) if self.layout == "channels_first" else images

    def out_shape(self):
        h, w = self.resize or self.shape[:2]
        c = self.shape[2]
        return (c, h, w) if self.layout == "channels_first" else (h, w, c)
