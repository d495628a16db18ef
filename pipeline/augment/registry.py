"""The augmentation registry: each op is a small frozen dataclass registered under a name.

An op works on one modality (``image``, ``text`` or ``tabular``). Most ops change one sample at a
time (``SampleOp``); an op that needs the whole block, such as mixup, is a ``BlockOp``. Ops draw
all their randomness from the generator they are given, so a block's output depends only on the
block and that generator.
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

MODALITIES = ("image", "text", "tabular")
_REGISTRY: dict[str, type["Op"]] = {}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Op:
    """Base of all ops; subclasses set ``modality`` and implement ``apply_block``."""

    modality: ClassVar[str] = ""
    name: ClassVar[str] = ""

    def apply_block(self, block: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement apply_block")

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.name, **dataclasses.asdict(self)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class SampleOp(Op):
    """An op that changes one sample; ``apply_block`` maps it over the block in order."""

    def __call__(self, sample: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__")

    def apply_block(self, block: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.stack([self(sample, rng) for sample in block]) if len(block) else block


@dataclasses.dataclass(frozen=True, kw_only=True)
class BlockOp(Op):
    """An op that needs the whole block at once (e.g. mixup pairs samples of a block)."""


def register(name: str):
    """Class decorator: make the op available as ``{"op": name, ...}`` in ``augment.ops``."""
    def wrap(cls: type[Op]) -> type[Op]:
        if name in _REGISTRY:
            raise ValueError(f"augmentation {name!r} is registered twice")
        if cls.modality not in MODALITIES:
            raise ValueError(f"augmentation {name!r}: modality {cls.modality!r} is not one of {MODALITIES}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls
    return wrap


def names() -> list[str]:
    """Registered op names, sorted."""
    _load_builtin()
    return sorted(_REGISTRY)


def build(spec: dict, where: str = "augment.ops") -> Op:
    """The op for one config entry ``{"op": "rotate", "max_degrees": 10}``; ``ValueError`` says why not."""
    _load_builtin()
    if not isinstance(spec, dict) or "op" not in spec:
        raise ValueError(f"{where} must be a mapping with an 'op' key (got {spec!r}); "
                         "e.g. {op: shift, max_pixels: 2}")
    params = {k: v for k, v in spec.items() if k != "op"}
    cls = _REGISTRY.get(spec["op"])
    if cls is None:
        raise ValueError(f"{where}: unknown op {spec['op']!r}; choose one of {', '.join(names())}")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - fields)
    if unknown:
        raise ValueError(f"{where} ({spec['op']}): unknown parameter {unknown[0]!r}; "
                         f"accepted: {', '.join(sorted(fields)) or 'none'}")
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where} ({spec['op']}): {exc}") from None


def build_all(specs: list[dict]) -> list[Op]:
    """Ops for a whole ``augment.ops`` list; they must all work on one modality."""
    ops = [build(spec, f"augment.ops[{i}]") for i, spec in enumerate(specs)]
    kinds = sorted({op.modality for op in ops})
    if len(kinds) > 1:
        raise ValueError(f"augment.ops mixes modalities {kinds}; one dataset variable is augmented, "
                         "so list ops of one modality")
    return ops


def check(condition: bool, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``condition``: parameter checks in ``__post_init__``."""
    if not condition:
        raise ValueError(message)


def _load_builtin() -> None:
    from pipeline.augment import image, tabular, text  # noqa: F401 - registers the built-in ops
