"""Text augmentations of one token sequence.

A sample is either a sequence of string tokens (``["a", "good", "film"]``) or a row of integer
token ids padded at the end with ``0`` (what ``pipeline.transforms`` stores); padding is kept
at the end and the row keeps its length.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.augment.registry import SampleOp, check, register

PAD = 0


def _tokens(sample) -> tuple[list, bool]:
    """The real tokens of a sample and whether it is a padded id row."""
    arr = np.asarray(sample)
    if arr.dtype.kind in "iu":
        return [int(t) for t in arr if t != PAD], True
    return list(sample), False


def _back(tokens: list, sample, padded: bool):
    if not padded:
        return tokens
    out = np.full(len(sample), PAD, dtype=np.asarray(sample).dtype)
    out[:len(tokens)] = tokens[:len(sample)]
    return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class _TextOp(SampleOp):
    modality = "text"

    def __call__(self, sample, rng):
        tokens, padded = _tokens(sample)
        return _back(self.edit(tokens, rng), sample, padded)

    def apply_block(self, block, rng):
        if isinstance(block, np.ndarray) and block.dtype.kind in "iu":
            return super().apply_block(block, rng)
        return [self(sample, rng) for sample in block]

    def edit(self, tokens: list, rng: np.random.Generator) -> list:
        raise NotImplementedError(f"{type(self).__name__} must implement edit")


@register("random_deletion")
@dataclasses.dataclass(frozen=True, kw_only=True)
class RandomDeletion(_TextOp):
    """Drop each token with probability ``p``; at least one token is kept."""

    p: float = 0.1

    def __post_init__(self):
        check(0 <= self.p < 1, f"p must be in [0, 1) (got {self.p}); e.g. 0.1")

    def edit(self, tokens, rng):
        if not tokens:
            return tokens
        keep = rng.random(len(tokens)) >= self.p
        kept = [t for t, k in zip(tokens, keep) if k]
        return kept or tokens[int(rng.integers(len(tokens))):][:1]


@register("random_swap")
@dataclasses.dataclass(frozen=True, kw_only=True)
class RandomSwap(_TextOp):
    """Swap two random positions, ``n_swaps`` times."""

    n_swaps: int = 1

    def __post_init__(self):
        check(isinstance(self.n_swaps, int) and self.n_swaps >= 0,
              f"n_swaps must be an int >= 0 (got {self.n_swaps!r}); e.g. 1")

    def edit(self, tokens, rng):
        out = list(tokens)
        for _ in range(self.n_swaps if len(out) > 1 else 0):
            i, j = rng.integers(len(out), size=2)
            out[i], out[j] = out[j], out[i]
        return out


@register("synonym_replace")
@dataclasses.dataclass(frozen=True, kw_only=True)
class SynonymReplace(_TextOp):
    """Replace each token that has synonyms, with probability ``p``, by one of them (uniformly).

    ``synonyms`` maps a word to its replacements, e.g. ``{"good": ["fine", "great"]}``. For id rows
    ``vocabulary`` (id -> word, as fitted by the text transform) translates; words outside it are
    skipped. ``pipeline.augment.augment_train`` fills it from the variable's ``vocabulary`` attribute.
    """

    synonyms: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    p: float = 0.2
    vocabulary: list[str] | None = None

    def __post_init__(self):
        check(isinstance(self.synonyms, dict) and all(
            isinstance(v, list) and v and all(isinstance(w, str) for w in v) for v in self.synonyms.values()),
            "synonyms must map each word to a non-empty list of words; e.g. {good: [fine, great]}")
        check(0 <= self.p <= 1, f"p must be in [0, 1] (got {self.p}); e.g. 0.2")

    def to_dict(self):
        return {k: v for k, v in super().to_dict().items() if k != "vocabulary"}

    def _table(self, ids: bool) -> dict:
        if not ids:
            return self.synonyms
        if self.vocabulary is None:
            raise ValueError("synonym_replace on token ids needs the fitted vocabulary; "
                             "store the text column with its 'vocabulary' attribute")
        index = {w: i for i, w in enumerate(self.vocabulary)}
        return {index[w]: [index[s] for s in subs if s in index]
                for w, subs in self.synonyms.items() if w in index}

    def edit(self, tokens, rng):
        table = self._table(bool(tokens) and isinstance(tokens[0], int))
        out = []
        for token in tokens:
            choices = table.get(token)
            draw = rng.random()
            out.append(choices[int(rng.integers(len(choices)))] if choices and draw < self.p else token)
        return out
