"""A subword tokenizer (Hugging Face ``tokenizers``, BPE) fitted on the train split.

- ``subword``: one row of ``length`` int32 ids per record, 0-padded and truncated (classification,
  and what serving computes for any text model trained on a tokenized dataset);
- ``packed``: the same ids per record at serving, but the dataset stores the train/val/test token
  streams packed into fixed-length sequences (:mod:`pipeline.packing`).

The reserved ids are fixed: 0 ``<pad>``, 1 ``<unk>``, 2 ``<eod>`` (end of document, between packed
documents), 3 ``<mask>`` (masked language modelling). Fitting trains the tokenizer in one Dask task
on a worker over the train rows in their stored order, so the result depends on the data alone,
not on the number of workers. The state is the tokenizer's own JSON (``Tokenizer.to_str()``),
kept in the dataset's ``features`` attribute like every fitted transform: no pickle. With
``tokenizer_file`` (e.g. ``<version>/tokenizer.json`` of a pretraining corpus) nothing is
trained: a fine-tuning dataset then encodes text exactly as the pretrained model saw it.

>>> t = Subword(name="tokens", columns=["text"], vocab_size=40, length=6)
>>> t = t.with_tokenizer(train_tokenizer(["a cat sat", "a cat ran", "the cat"], t))
>>> t.encode(["a cat"])[0][:2] == t.encode(["a cat sat"])[0][:2]
True
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import dask
import numpy as np
import pandas as pd

from pipeline.errors import UserError
from pipeline.transforms.base import Transform, check, register

SPECIAL = ("<pad>", "<unk>", "<eod>", "<mask>")
PAD, UNK, EOD, MASK = range(len(SPECIAL))
#: Unigram (tokenizers 0.23.3) trained twice on the same texts gives other scores, even on one
#: thread: a version would not be reproducible, so only BPE is offered.
MODELS = ("bpe",)


def _tokenizers():
    try:
        import tokenizers
    except ImportError:  # pragma: no cover - a pinned dependency
        raise UserError("features.groups: subword tokenizers need the `tokenizers` package; "
                        "pip install 'tokenizers==0.23.3'") from None
    return tokenizers


def train_tokenizer(texts, spec: "Subword") -> str:
    """The trained tokenizer as JSON, from an iterable of texts (in order)."""
    tk = _tokenizers()
    tokenizer = tk.Tokenizer(tk.models.BPE(unk_token=SPECIAL[UNK]))
    trainer = tk.trainers.BpeTrainer(vocab_size=spec.vocab_size, min_frequency=spec.min_frequency,
                                     special_tokens=list(SPECIAL), show_progress=False)
    tokenizer.pre_tokenizer = tk.pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator((t for t in texts if isinstance(t, str)), trainer=trainer)
    return tokenizer.to_str()


def _train_on_parts(parts: list[pd.Series], spec: "Subword") -> str:
    return train_tokenizer((t for part in parts for t in part.tolist()), spec)


@register("subword")
@dataclasses.dataclass(frozen=True, kw_only=True)
class Subword(Transform):
    """Subword token ids of one text column; ``vocab_size`` counts the four reserved ids."""

    model: str = "bpe"
    vocab_size: int = 4000
    min_frequency: int = 2
    length: int = 64
    tokenizer_file: str | None = None
    out_dtype = "int32"

    def __post_init__(self):
        check(len(self.columns) == 1, f"a subword transform reads one column (got {self.columns!r})")
        check(self.model in MODELS, f"model must be bpe (got {self.model!r}): unigram training is not "
                                    "repeatable in tokenizers 0.23.3, so a version would not be either")
        check(isinstance(self.vocab_size, int) and self.vocab_size > len(SPECIAL),
              f"vocab_size must be an int above {len(SPECIAL)} (got {self.vocab_size!r})")
        check(isinstance(self.length, int) and self.length >= 2, f"length must be an int >= 2 (got {self.length!r})")

    def fit_state(self, frame):
        if self.tokenizer_file is not None:
            return self._state(_read_tokenizer(self.tokenizer_file))
        parts = frame[self.columns[0]].to_delayed()
        return self._state(dask.delayed(_train_on_parts, pure=True)(parts, self).compute())

    def _state(self, tokenizer_json: str) -> dict:
        tokenizer = _tokenizers().Tokenizer.from_str(tokenizer_json)
        for i, token in enumerate(SPECIAL):
            if tokenizer.token_to_id(token) != i:
                raise UserError(f"features.groups ({self.kind}): the tokenizer gives {token!r} the id "
                                f"{tokenizer.token_to_id(token)}, dcpipe needs {i}; train it with dcpipe")
        return {"tokenizer": tokenizer_json, "vocab_size": tokenizer.get_vocab_size()}

    def with_tokenizer(self, tokenizer_json: str) -> "Subword":
        """A fitted copy with the given tokenizer JSON."""
        return dataclasses.replace(self, state=self._state(tokenizer_json))

    @property
    def tokenizer(self):
        cached = self.__dict__.get("_tokenizer")
        if cached is None:
            cached = _tokenizers().Tokenizer.from_str(self.state["tokenizer"])
            object.__setattr__(self, "_tokenizer", cached)   # a cache of the state, not state
        return cached

    def encode(self, texts) -> list[list[int]]:
        """Token ids of each text, not padded (no reserved id but ``<unk>``)."""
        texts = ["" if not isinstance(t, str) else t for t in texts]
        return [e.ids for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)] if texts else []

    def transform(self, frame):
        out = np.zeros((len(frame), self.length), dtype="int32")
        for row, ids in enumerate(self.encode(frame[self.columns[0]].tolist())):
            ids = ids[:self.length]
            out[row, :len(ids)] = ids
        return out

    def out_shape(self):
        return (self.length,)


@register("packed")
@dataclasses.dataclass(frozen=True, kw_only=True)
class Packed(Subword):
    """Subword ids packed into ``length``-token sequences with ``<eod>`` between documents."""

    length: int = 128


def _read_tokenizer(path: str) -> str:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise UserError(f"{path}: cannot read the tokenizer ({exc.strerror}); give the tokenizer.json of a "
                        "prepared dataset version in features.groups[].tokenizer_file") from None
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: line {exc.lineno} is not valid JSON ({exc.msg})") from None
    return text
