"""Image augmentations of one (height, width, channel) float image with pixels in [0, 1]."""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from pipeline.augment.registry import SampleOp, check, register


def _clip(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    return np.clip(out, 0.0, 1.0).astype(like.dtype)


@dataclasses.dataclass(frozen=True, kw_only=True)
class _ImageOp(SampleOp):
    modality = "image"


@register("flip")
@dataclasses.dataclass(frozen=True, kw_only=True)
class Flip(_ImageOp):
    """Mirror left-right with probability ``horizontal`` and top-bottom with ``vertical``."""

    horizontal: float = 0.5
    vertical: float = 0.0

    def __post_init__(self):
        check(0 <= self.horizontal <= 1 and 0 <= self.vertical <= 1,
              f"horizontal and vertical are probabilities in [0, 1] (got {self.horizontal}, {self.vertical})")

    def __call__(self, img, rng):
        h, v = rng.random(2)
        out = img[:, ::-1] if h < self.horizontal else img
        return np.ascontiguousarray(out[::-1] if v < self.vertical else out)


@register("shift")
@dataclasses.dataclass(frozen=True, kw_only=True)
class Shift(_ImageOp):
    """Shift by whole pixels, uniform in [-max_pixels, max_pixels] on each axis; zeros fill in."""

    max_pixels: int = 2

    def __post_init__(self):
        check(isinstance(self.max_pixels, int) and self.max_pixels >= 0,
              f"max_pixels must be an int >= 0 (got {self.max_pixels!r}); e.g. 2")

    def __call__(self, img, rng):
        if self.max_pixels == 0:
            return img
        dy, dx = rng.integers(-self.max_pixels, self.max_pixels + 1, size=2)
        return ndimage.shift(img, (dy, dx, 0), order=0, mode="constant")


@register("rotate")
@dataclasses.dataclass(frozen=True, kw_only=True)
class Rotate(_ImageOp):
    """Rotate about the centre by an angle uniform in [-max_degrees, max_degrees]; bilinear."""

    max_degrees: float = 10.0

    def __post_init__(self):
        check(0 <= self.max_degrees <= 180, f"max_degrees must be in [0, 180] (got {self.max_degrees}); e.g. 10")

    def __call__(self, img, rng):
        if self.max_degrees == 0:
            return img
        angle = rng.uniform(-self.max_degrees, self.max_degrees)
        return ndimage.rotate(img, angle, axes=(1, 0), reshape=False, order=1, mode="constant")


@register("crop_resize")
@dataclasses.dataclass(frozen=True, kw_only=True)
class CropResize(_ImageOp):
    """Crop a random window of ``scale`` in [min_scale, 1] of each side, resize back (bilinear)."""

    min_scale: float = 0.8

    def __post_init__(self):
        check(0 < self.min_scale <= 1, f"min_scale must be in (0, 1] (got {self.min_scale}); e.g. 0.8")

    def __call__(self, img, rng):
        h, w = img.shape[:2]
        scale = rng.uniform(self.min_scale, 1.0)
        ch, cw = max(1, round(h * scale)), max(1, round(w * scale))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = img[y:y + ch, x:x + cw]
        out = ndimage.zoom(crop, (h / ch, w / cw, 1), order=1, mode="nearest", grid_mode=True)
        return _clip(out[:h, :w], img)


@register("gaussian_noise")
@dataclasses.dataclass(frozen=True, kw_only=True)
class GaussianNoise(_ImageOp):
    """Add gaussian noise of standard deviation ``std`` to every pixel, then clip to [0, 1]."""

    std: float = 0.02

    def __post_init__(self):
        check(self.std >= 0, f"std must be >= 0 (got {self.std}); e.g. 0.02")

    def __call__(self, img, rng):
        if self.std == 0:
            return img
        return _clip(img + rng.normal(0.0, self.std, size=img.shape), img)


@register("brightness_contrast")
@dataclasses.dataclass(frozen=True, kw_only=True)
class BrightnessContrast(_ImageOp):
    """``(img - mean) * c + mean + b`` with c uniform in 1 ± contrast, b uniform in ± brightness."""

    brightness: float = 0.1
    contrast: float = 0.1

    def __post_init__(self):
        check(0 <= self.brightness <= 1 and 0 <= self.contrast < 1,
              f"brightness must be in [0, 1] and contrast in [0, 1) (got {self.brightness}, {self.contrast})")

    def __call__(self, img, rng):
        b = rng.uniform(-self.brightness, self.brightness)
        c = rng.uniform(1 - self.contrast, 1 + self.contrast)
        mean = img.mean()
        return _clip((img - mean) * c + mean + b, img)
