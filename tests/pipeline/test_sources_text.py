"""Labelled text: LABEL<delimiter>TEXT lines and <label>/<file> folders, and how labels are judged."""
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline import sources
from pipeline.config import SchemaConfig, SourceConfig
from pipeline.sources.text import split_label
from pipeline.validate import validate_labels
from tests.pipeline.helpers import collect

SCHEMA = SchemaConfig(labels=["sports", "tech"])

LINES = ["sports\tThe match went to extra time",     # 1 fine
         "tech\tA new chip\twith a tab inside",       # 2 split on the first tab only
         "no delimiter here",                         # 3 wrong_field_count
         "",                                          # 4 an empty line: wrong_field_count
         "\tno label",                                # 5 missing_value
         "music\ta bad label",                        # 6 label_not_allowed
         " tech \tspaces around the label"]           # 7 fine: the label is stripped


def _labelled_lines(tmp_path):
    (tmp_path / "t.tsv").write_text("\n".join(LINES) + "\n")
    cfg = SourceConfig(kind="text", path=str(tmp_path / "t.tsv"), labelled=True, delimiter="\t")
    return sources.read(cfg, SCHEMA)


def test_labelled_lines_split_at_the_first_delimiter(tmp_path):
    got = collect(_labelled_lines(tmp_path))
    assert got["line"].tolist() == list(range(1, 8)) and got["raw"].tolist() == LINES
    assert got["label"].tolist()[:2] == ["sports", "tech"] and got["label"][6] == "tech"
    assert got["text"][1] == "A new chip\twith a tab inside"
    assert got["reason"].tolist()[2:4] == ["wrong_field_count", "wrong_field_count"]
    assert pd.isna(got["label"][4]) and pd.isna(got["reason"][4])    # judged by validate_labels


def test_validate_labels_quarantines_each_bad_line_with_its_reason(tmp_path):
    checked = validate_labels(_labelled_lines(tmp_path).records, SCHEMA)
    rows = checked.rows.compute(scheduler="sync")
    q = checked.quarantine.compute(scheduler="sync").set_index("line")
    assert rows["line"].tolist() == [1, 2, 7] and rows["label"].tolist() == [0, 1, 1]
    assert rows["label"].dtype == "int16" and "text" in rows.columns
    assert q["reason"].to_dict() == {3: "wrong_field_count", 4: "wrong_field_count", 5: "missing_value",
                                     6: "label_not_allowed"}
    assert q.loc[6, "raw"] == "music\ta bad label"


def test_file_mode_takes_the_label_from_the_parent_folder(tmp_path):
    for label, name, text in [("sports", "a.txt", "goal\nscored"), ("tech", "b.txt", "chips"),
                              ("music", "c.txt", "a song")]:
        (tmp_path / label).mkdir()
        (tmp_path / label / name).write_text(text)
    cfg = SourceConfig(kind="text", path=str(tmp_path / "*" / "*.txt"), text_mode="file", labelled=True)
    got = collect(sources.read(cfg, SCHEMA))
    assert got[["source", "label", "text"]].values.tolist() == [
        ["music/c.txt", "music", "a song"], ["sports/a.txt", "sports", "goal\nscored"], ["tech/b.txt", "tech", "chips"]]
    q = validate_labels(sources.read(cfg, SCHEMA).records, SCHEMA).quarantine.compute(scheduler="sync")
    assert q[["source", "reason"]].values.tolist() == [["music/c.txt", "label_not_allowed"]]


@pytest.mark.parametrize("line, expected", [
    ("a,b,c", ("a", "b,c", None)),              # the first delimiter only
    ("a,", ("a", "", None)),                    # an empty text is left for clean_text (empty_text)
    (",b", (None, "b", None)),                  # an empty label is missing
    ("abc", (None, "", "wrong_field_count")),   # no delimiter at all
])
def test_split_label(line, expected):
    assert split_label(line, ",") == expected


@given(st.text())
def test_split_label_never_loses_the_text(line):
    label, text, reason = split_label(line, "\t")
    assert (reason is None) == ("\t" in line)
    if reason is None:
        head, tail = line.split("\t", 1)                           # at the first tab
        assert (label, text) == (head.strip() or None, tail)
    else:
        assert (label, text) == (None, "")
