"""Text normalisation and personal-data masking, with counts."""
import dask
import dask.dataframe as dd
import pandas as pd
import pytest

from pipeline.clean.text import clean_text, mask, normalise
from pipeline.config import TextPolicy

ALL = ["email", "phone", "ip", "digits"]


@pytest.mark.parametrize("text, expected", [
    ("ＡＢＣ　１２３", "abc 123"),              # NFKC folds full-width letters, digits and space
    ("  Hello\t\n  World ", "hello world"),    # whitespace runs collapse, ends stripped
    ("ﬁne Ⅻ", "fine xii"),                     # ligature and roman numeral compatibility forms
])
def test_normalise(text, expected):
    assert normalise(text, TextPolicy()) == expected


@pytest.mark.parametrize("text, masked, counts", [
    ("mail bob.smith+x@example.co.uk now", "mail <EMAIL> now", {"email": 1}),
    ("from 192.168.0.12 and 10.0.0.1.", "from <IP> and <IP>.", {"ip": 2}),
    ("v6 2001:db8:85a3:0:0:8a2e:370:7334 ok", "v6 <IP> ok", {"ip": 1}),
    ("call +44 20 7946 0958 or (555) 123-4567", "call <PHONE> or <PHONE>", {"phone": 2}),
    ("card 4111111111111111 end", "card <DIGITS> end", {"digits": 1}),
    ("on 2024-01-05 pay 12.50 for 3 items", "on 2024-01-05 pay 12.50 for 3 items", {}),   # not personal
    ("version 1.2.3.4.5", "version 1.2.3.4.5", {}),          # not an IP: five parts
])
def test_mask(text, masked, counts):
    out, found = mask(text, ALL)
    assert out == masked
    assert found == {k: counts.get(k, 0) for k in ALL}


def test_clean_text_counts_and_quarantines_empty_records():
    texts = ["Mail ME@X.ORG", "   ", "ip 8.8.8.8, ip 1.1.1.1", "plain", "!!! ---"]   # the last: no word
    frame = pd.DataFrame({"source": pd.array(["t.txt"] * 5, dtype="string"), "line": [1, 2, 3, 4, 5],
                          "raw": pd.array(texts, dtype="string"), "text": pd.array(texts, dtype="string")})
    result = clean_text(dd.from_pandas(frame, npartitions=2, sort=False), TextPolicy())
    with dask.config.set(scheduler="sync"):
        records, quarantine, masked = dask.compute(result.records, result.quarantine, result.masked)
    assert records["text"].tolist() == ["mail <EMAIL>", "ip <IP>, ip <IP>", "plain"]
    assert masked == {"email": 1, "phone": 0, "ip": 2, "digits": 0}
    assert quarantine[["line", "reason", "raw"]].values.tolist() == [[2, "empty_text", "   "],
                                                                    [5, "empty_text", "!!! ---"]]
