"""A tiny unlabelled corpus for the text-path tests: plain documents, planted near-duplicates
(one word with an added letter) and documents the quality filters reject."""
from __future__ import annotations

import random

from pipeline.config import JobConfig

SYLLABLES = "ka lo mi ru se ta vo ne pi da fu go be ri zo".split()
WORDS = [a + b for a in SYLLABLES for b in SYLLABLES] + "the of and to with that have be".split()


def documents(n: int = 120, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(25, 45))) for _ in range(n)]


def near_copy(doc: str, position: int = 3) -> str:
    words = doc.split()
    words[position] += "s"
    return " ".join(words)


BAD = {"too_few_words": "just three words",
       "symbol_ratio": " ".join(["#tag word"] * 12),
       "repeated_ngrams": " ".join(["spam eggs"] * 20)}


def corpus_lines() -> tuple[list[str], dict[int, int]]:
    """(lines, {line of a planted near-copy: line of its original}); 1-based line numbers."""
    docs = documents()
    planted = {}
    for i in range(0, 30, 3):
        docs.append(near_copy(docs[i]))
        planted[len(docs)] = i + 1
    docs.extend(BAD.values())
    return docs, planted


def corpus_job(path, workers: int = 2, **sections) -> JobConfig:
    """The corpus job of the text-path tests: filters, near-duplicates, 32-token packed sequences of a
    200-token BPE vocabulary; ``sections`` update the named sections."""
    base = {"dataset": {"name": "corpus"}, "source": {"kind": "text", "path": str(path)},
            "clean": {"near_duplicates": {"threshold": 0.8, "num_perm": 128, "ngram": 5}, "quality": {"min_words": 5}},
            "features": {"groups": [{"kind": "packed", "name": "tokens", "columns": ["text"], "length": 32,
                                     "vocab_size": 200}]},
            "augment": {"copies": 0}, "store": {"chunk_rows": 16},
            "cluster": {"workers": workers, "dashboard_address": ":0"}}
    for name, fields in sections.items():
        base[name] = {**base.get(name, {}), **fields}
    return JobConfig.model_validate(base)


def labelled_lines(per_class: int = 100, seed: int = 1) -> list[str]:
    """``LABEL<TAB>TEXT`` lines of two classes over the corpus's words: ``low`` documents use words
    that start with one of the first 7 syllables, ``high`` ones the others (the function words in both)."""
    rng = random.Random(seed)
    low = [w for w in WORDS if w[:2] in SYLLABLES[:7]]
    high = [w for w in WORDS if len(w) == 4 and w[:2] in SYLLABLES[7:]]
    common = WORDS[-8:]
    lines = []
    for _ in range(per_class):
        for label, words in (("low", low), ("high", high)):
            text = [rng.choice(words + common) for _ in range(rng.randint(8, 20))]
            lines.append(f"{label}\t{' '.join(text)}")
    return lines
