"""Document quality filters in the style of Gopher (Rae et al. 2021) and C4, each a named reason.

Checked on each record's text as read (before normalising, so lines still exist), in this order;
the first that fails is the record's quarantine reason. Words are the whitespace-separated tokens.

    too_few_words      fewer than ``min_words`` words
    too_many_words     more than ``max_words`` words
    mean_word_length   mean characters per word outside [min_mean_word_length, max_mean_word_length]
    symbol_ratio       ('#' + '...' + '…') per word above ``max_symbol_ratio``
    non_letter_ratio   share of words without a letter above ``max_non_letter_ratio``
    repeated_lines     share of non-empty lines equal to an earlier line above ``max_repeated_line_fraction``
    repeated_ngrams    for n in ``max_top_ngram_fraction``: the characters of the most frequent word
                       n-gram (counted each time it occurs) over all word characters above the limit
    duplicate_ngrams   for n in ``max_duplicate_ngram_fraction``: the characters of words inside
                       word n-grams that occur more than once over all word characters above the limit
    language           ``language: en``: fewer than 2 of the stop words in ``STOP_WORDS["en"]``

>>> from pipeline.config import QualityPolicy
>>> failure("spam spam spam spam spam spam spam spam", QualityPolicy())
'repeated_ngrams'
>>> failure("A short, ordinary sentence about the weather.", QualityPolicy()) is None
True
"""
from __future__ import annotations

from collections import Counter

import dask.dataframe as dd
import numpy as np
import pandas as pd

from pipeline.config import QualityPolicy
from pipeline.partitions import per_partition
from pipeline.validate import quarantine_records

REASONS = ("too_few_words", "too_many_words", "mean_word_length", "symbol_ratio", "non_letter_ratio",
           "repeated_lines", "repeated_ngrams", "duplicate_ngrams", "language")
STOP_WORDS = {"en": frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})}


def _ngrams(words: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def top_ngram_fraction(words: list[str], n: int) -> float:
    """Characters of the most frequent n-gram (each occurrence) over all word characters; 0 if none repeats."""
    grams = Counter(_ngrams(words, n))
    if not grams:
        return 0.0
    gram, count = grams.most_common(1)[0]
    if count < 2:
        return 0.0
    return count * sum(map(len, gram)) / max(1, sum(map(len, words)))


def duplicate_ngram_fraction(words: list[str], n: int) -> float:
    """Characters of the words covered by n-grams that occur more than once, over all word characters."""
    grams = _ngrams(words, n)
    seen = Counter(grams)
    covered = np.zeros(len(words), dtype=bool)
    for i, g in enumerate(grams):
        if seen[g] > 1:
            covered[i:i + n] = True
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    return float(lengths[covered].sum()) / max(1, int(lengths.sum()))


def repeated_line_fraction(text: str) -> float:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return (len(lines) - len(set(lines))) / len(lines) if lines else 0.0


def _over(value: float, limit: float | None) -> bool:
    return limit is not None and value > limit


def _under(value: float, limit: float | None) -> bool:
    return limit is not None and value < limit


def failure(text: str, policy: QualityPolicy) -> str | None:
    """The first quality check ``text`` fails (a name from ``REASONS``), or None."""
    words = text.split()
    n = len(words)
    if _under(n, policy.min_words):
        return "too_few_words"
    if _over(n, policy.max_words):
        return "too_many_words"
    if n == 0:
        return None            # nothing more to judge; the clean step quarantines empty texts
    mean = sum(map(len, words)) / n
    if _under(mean, policy.min_mean_word_length) or _over(mean, policy.max_mean_word_length):
        return "mean_word_length"
    symbols = text.count("#") + text.count("...") + text.count("\u2026")
    if _over(symbols / n, policy.max_symbol_ratio):
        return "symbol_ratio"
    if _over(sum(not any(c.isalpha() for c in w) for w in words) / n, policy.max_non_letter_ratio):
        return "non_letter_ratio"
    if _over(repeated_line_fraction(text), policy.max_repeated_line_fraction):
        return "repeated_lines"
    lower = [w.lower() for w in words]
    if any(_over(top_ngram_fraction(lower, k), v) for k, v in sorted(policy.max_top_ngram_fraction.items())):
        return "repeated_ngrams"
    if any(_over(duplicate_ngram_fraction(lower, k), v)
           for k, v in sorted(policy.max_duplicate_ngram_fraction.items())):
        return "duplicate_ngrams"
    if policy.language is not None and len(STOP_WORDS[policy.language].intersection(lower)) < 2:
        return "language"
    return None


def _filter(frame: pd.DataFrame, policy: QualityPolicy) -> tuple[pd.DataFrame, pd.DataFrame]:
    reasons = [failure(t, policy) for t in frame["text"].fillna("")]
    bad = np.asarray([r is not None for r in reasons], dtype=bool)
    q = quarantine_records(frame[bad], "")
    q["reason"] = pd.array([r for r in reasons if r is not None], dtype="string")
    return frame[~bad], q


def filter_quality(rows: dd.DataFrame, policy: QualityPolicy) -> tuple[dd.DataFrame, dd.DataFrame]:
    """(records passing every check, the others as quarantine records with their reason); lazy."""
    q_meta = quarantine_records(rows._meta, "")
    return per_partition(rows, _filter, (rows._meta, q_meta), policy, name="clean-quality")
