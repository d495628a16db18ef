"""Gradient compression, chosen by name: ``none``, ``fp16``, ``topk:RATIO``, ``powersgd:RANK``.

``none`` and ``fp16`` are Horovod's own codecs, applied by ``hvd.DistributedGradientTape``.
``topk`` and ``powersgd`` are exchanged here, with error feedback (what a step does not send is
added to the next step's gradient), through a :class:`Collectives` object that ``models.train``
implements with Horovod; this module never imports Horovod, so it runs in one process in tests.

Every compressor reports :meth:`Compressor.bytes_per_step`: what one rank sends per step.

>>> parse("topk:0.01")
TopK(ratio=0.01)
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import tensorflow as tf

FLOAT_BYTES = 4
INDEX_BYTES = 4


class Collectives(Protocol):
    """What a compressor needs from the communication layer."""

    size: int

    def allreduce_mean(self, tensor: tf.Tensor, name: str) -> tf.Tensor: ...

    def allgather(self, tensor: tf.Tensor, name: str) -> tf.Tensor: ...


class Compressor:
    """Base class: exchange gradients between ranks, averaging them."""

    horovod_codec: str | None = None   # "none"/"fp16": let DistributedGradientTape do the exchange

    def build(self, variables: Sequence[tf.Variable]) -> None:
        """Create the state (error-feedback residuals, warm-start matrices) for ``variables``."""

    def exchange(self, grads: list[tf.Tensor], comm: Collectives) -> list[tf.Tensor]:
        raise NotImplementedError(f"{type(self).__name__} is exchanged by Horovod's tape, not here")

    def bytes_per_step(self, shapes: Sequence[tuple[int, ...]]) -> int:
        raise NotImplementedError(f"{type(self).__name__} must say what it sends")


@dataclass(frozen=True)
class NoCompression(Compressor):
    horovod_codec = "none"

    def bytes_per_step(self, shapes):
        return sum(FLOAT_BYTES * math.prod(s) for s in shapes)


@dataclass(frozen=True)
class FP16(Compressor):
    horovod_codec = "fp16"

    def bytes_per_step(self, shapes):
        return sum(2 * math.prod(s) for s in shapes)


@dataclass(frozen=True)
class TopK(Compressor):
    """Send the ``ratio`` largest-magnitude entries of each gradient (values and int32 indices)."""

    ratio: float
    _residuals: list = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self):
        if not 0 < self.ratio <= 1:
            raise ValueError(f"topk ratio must be in (0, 1] (got {self.ratio})")

    def k(self, n: int) -> int:
        return max(1, math.ceil(self.ratio * n))

    def build(self, variables):
        self._residuals[:] = [tf.Variable(tf.zeros([math.prod(v.shape)], v.dtype), trainable=False)
                              for v in variables]

    def exchange(self, grads, comm):
        out = []
        for i, (g, residual) in enumerate(zip(grads, self._residuals)):
            acc = tf.reshape(g, [-1]) + residual
            n = acc.shape[0]
            _, idx = tf.math.top_k(tf.abs(acc), k=self.k(n), sorted=False)
            values = tf.gather(acc, idx)
            residual.assign(tf.tensor_scatter_nd_update(acc, idx[:, None], tf.zeros_like(values)))
            all_values = comm.allgather(values, name=f"topk_values_{i}")
            all_idx = comm.allgather(idx, name=f"topk_indices_{i}")
            dense = tf.scatter_nd(all_idx[:, None], all_values, [n]) / comm.size
            out.append(tf.reshape(dense, tf.shape(g)))
        return out

    def bytes_per_step(self, shapes):
        return sum(self.k(math.prod(s)) * (FLOAT_BYTES + INDEX_BYTES) for s in shapes)


def _matrix_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """A kernel as a matrix: all axes but the last are rows (a conv kernel's fan-in)."""
    return (math.prod(shape[:-1]), shape[-1]) if len(shape) > 1 else (shape[0], 1)


@dataclass(frozen=True)
class PowerSGD(Compressor):
    """Rank-``rank`` approximation P Q^T of each matrix gradient (Vogels et al., 2019), one power
    iteration per step warm-started from the last Q. Tensors for which the factors would not be
    smaller than the tensor itself (biases, tiny kernels) are averaged uncompressed."""

    rank: int
    seed: int = 0
    _state: list = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.rank < 1:
            raise ValueError(f"powersgd rank must be >= 1 (got {self.rank})")

    def compresses(self, shape: tuple[int, ...]) -> bool:
        n, m = _matrix_shape(shape)
        return len(shape) > 1 and (n + m) * self.rank < n * m

    def build(self, variables):
        rng = np.random.default_rng(self.seed)   # same Q on every rank
        self._state[:] = []
        for v in variables:
            shape = tuple(v.shape)
            if not self.compresses(shape):
                self._state.append(None)
                continue
            n, m = _matrix_shape(shape)
            q = rng.standard_normal((m, self.rank)).astype(tf.as_dtype(v.dtype).as_numpy_dtype)
            self._state.append((tf.Variable(tf.zeros((n, m), v.dtype), trainable=False),
                                tf.Variable(q, trainable=False)))

    def exchange(self, grads, comm):
        out = []
        for i, (g, state) in enumerate(zip(grads, self._state)):
            if state is None:
                out.append(comm.allreduce_mean(g, name=f"powersgd_dense_{i}"))
                continue
            error, q = state
            m = tf.reshape(g, error.shape) + error
            p = comm.allreduce_mean(m @ q, name=f"powersgd_p_{i}")
            p, _ = tf.linalg.qr(p)                       # orthonormal columns
            new_q = comm.allreduce_mean(tf.transpose(m) @ p, name=f"powersgd_q_{i}")
            approx = p @ tf.transpose(new_q)
            error.assign(m - approx)
            q.assign(new_q)
            out.append(tf.reshape(approx, tf.shape(g)))
        return out

    def bytes_per_step(self, shapes):
        total = 0
        for shape in shapes:
            n, m = _matrix_shape(shape)
            total += FLOAT_BYTES * ((n + m) * self.rank if self.compresses(shape) else math.prod(shape))
        return total


_PARSERS: dict[str, Callable[[str], Compressor]] = {
    "none": lambda arg: NoCompression(),
    "fp16": lambda arg: FP16(),
    "topk": lambda arg: TopK(float(arg)),
    "powersgd": lambda arg: PowerSGD(int(arg)),
}
EXAMPLES = "none, fp16, topk:0.01, powersgd:4"


def parse(spec: str) -> Compressor:
    """The compressor that ``spec`` names, e.g. ``"powersgd:4"``; ValueError listing the forms."""
    name, colon, arg = str(spec).partition(":")
    try:
        if name in ("none", "fp16") and not colon or name in ("topk", "powersgd") and arg:
            return _PARSERS[name](arg)
    except ValueError:
        pass
    raise ValueError(f"compression {spec!r} is not one of: {EXAMPLES} (topk ratio in (0, 1], "
                     "powersgd rank a positive integer)")
