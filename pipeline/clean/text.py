"""Text records: Unicode NFKC, lower-case, whitespace, records with no word out; personal data masked, counted.

Masks (applied in this order, each match replaced by ``<KIND>``):

    email   name@example.org
    ip      IPv4 dotted quads (each part 0-255) and IPv6 with at least three groups
    phone   +44 20 7946 0958, (555) 123-4567, 555-123-4567: 7-15 digits with separators, not a
            date such as 2024-01-05
    digits  any remaining run of 12 or more digits (card numbers, account numbers)
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import dask.dataframe as dd
import pandas as pd

from pipeline.config import TextPolicy
from pipeline.validate import as_quarantine

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
PATTERNS: dict[str, re.Pattern] = {
    "email": re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),
    "ip": re.compile(rf"(?<![\d.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\.?\d)"
                     r"|(?<![:\w])(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{1,4}(?![:\w])"),
    "phone": re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,3}(?!\w)"),
    "digits": re.compile(r"\d{12,}"),
}
ORDER = ("email", "ip", "phone", "digits")
_DATE = re.compile(r"\d{4}[-.]\d{2}[-.]\d{2}")


def _digits(text: str) -> int:
    return sum(ch.isdigit() for ch in text)


def normalise(text: str, policy: TextPolicy) -> str:
    if policy.nfkc:
        text = unicodedata.normalize("NFKC", text)
    if policy.lower:
        text = text.lower()
    if policy.whitespace:
        text = " ".join(text.split())
    return text


def mask(text: str, kinds) -> tuple[str, dict[str, int]]:
    """``text`` with personal data replaced, and how many of each kind were replaced."""
    counts = {}
    for kind in ORDER:
        if kind not in kinds:
            continue
        pattern = PATTERNS[kind]
        if kind == "phone":
            def repl(m):  # a phone number has 7 to 15 digits and is not an ISO date
                if 7 <= _digits(m.group()) <= 15 and not _DATE.fullmatch(m.group()):
                    counts["phone"] = counts.get("phone", 0) + 1
                    return "<PHONE>"
                return m.group()
            text = pattern.sub(repl, text)
        else:
            text, n = pattern.subn(f"<{kind.upper()}>", text)
            counts[kind] = n
    return text, {k: counts.get(k, 0) for k in kinds}


def clean_one(text, policy: TextPolicy) -> tuple[str, dict[str, int]]:
    """One record as prepare cleans it (``None`` is empty text); also what serving applies."""
    return mask(normalise("" if text is None or text is pd.NA else str(text), policy), policy.mask)


def _clean_partition(frame: pd.DataFrame, policy: TextPolicy) -> pd.DataFrame:
    texts, counts = [], {f"n_{k}": [] for k in policy.mask}
    for value in frame["text"].fillna(""):
        cleaned, found = clean_one(value, policy)
        texts.append(cleaned)
        for k, n in found.items():
            counts[f"n_{k}"].append(n)
    return frame.assign(text=pd.array(texts, dtype="string"), **{k: pd.array(v, dtype="int64")
                                                                   for k, v in counts.items()})


@dataclass(frozen=True)
class TextCleanResult:
    """Lazy: cleaned records, quarantined (``empty_text``) records, masked counts per kind."""

    records: dd.DataFrame
    quarantine: dd.DataFrame
    masked: dict


def clean_text(records: dd.DataFrame, policy: TextPolicy) -> TextCleanResult:
    """Normalise and mask the ``text`` column of text records (see :mod:`pipeline.sources.text`)."""
    meta = records._meta.assign(**{f"n_{k}": pd.Series(dtype="int64") for k in policy.mask})
    done = records.map_partitions(_clean_partition, policy, meta=meta, token="clean-text")
    masked = {k: done[f"n_{k}"].sum() for k in policy.mask}
    done = done.drop(columns=[f"n_{k}" for k in policy.mask])
    # empty: no word character left (punctuation only would become a row of padding tokens)
    empty = ~done["text"].str.contains(r"\w", regex=True) if policy.drop_empty else done["text"].isna() & False
    quarantine = as_quarantine(done[empty], "empty_text")
    return TextCleanResult(done[~empty], quarantine, masked)
