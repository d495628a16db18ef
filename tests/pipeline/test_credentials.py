"""Passwords in source URLs: masked where stored or shown, ``${VAR}`` expanded only to connect."""
import pytest

from pipeline import credentials, provenance
from pipeline.config import JobConfig, dump_yaml, load_config
from pipeline.errors import UserError


@pytest.mark.parametrize("url, shown", [
    # a password in the user info
    ("postgresql://ann:s3cret@db:5432/x", "postgresql://ann:***@db:5432/x"),
    ("postgresql+psycopg://ann:p%40ss@db/x", "postgresql+psycopg://ann:***@db/x"),
    # a password in the query string
    ("postgresql://ann@db/x?sslmode=require&password=s3cret", "postgresql://ann@db/x?sslmode=require&password=***"),
    # references are not secrets: kept, so that the config still works when read back
    ("postgresql://ann:${PGPASSWORD}@db/x", "postgresql://ann:${PGPASSWORD}@db/x"),
    # nothing to hide
    ("postgresql://ann@db/x", "postgresql://ann@db/x"),
    ("sqlite:///data.db", "sqlite:///data.db"),
    ("/data/mnist/*.csv", "/data/mnist/*.csv"),
    ("s3://bucket/a:b@c.csv", "s3://bucket/a:b@c.csv"),   # a colon and @ after the host are not user info
])
def test_mask(url, shown):
    assert credentials.mask(url) == shown


def test_expand_substitutes_quoted_values_and_names_a_missing_variable(monkeypatch):
    monkeypatch.setenv("DCPIPE_TEST_PW", "p@ss/word")
    assert credentials.expand("postgresql://ann:${DCPIPE_TEST_PW}@db/x") == "postgresql://ann:p%40ss%2Fword@db/x"
    monkeypatch.delenv("DCPIPE_TEST_PW")
    with pytest.raises(UserError, match=r"^source\.path: environment variable DCPIPE_TEST_PW is not set "
                                        r"\(referenced as \$\{DCPIPE_TEST_PW\} in postgresql://ann:\$\{DCPIPE_TEST_PW\}"
                                        r"@db/x\); export DCPIPE_TEST_PW=\.\.\. before running"):
        credentials.expand("postgresql://ann:${DCPIPE_TEST_PW}@db/x")


def _sql(path: str) -> JobConfig:
    return JobConfig.model_validate({"source": {"kind": "sql", "path": path, "query": "samples"}})


def test_config_dumps_and_data_part_hold_no_password(tmp_path):
    cfg = _sql("postgresql://ann:s3cret@db/x")
    assert "s3cret" not in dump_yaml(cfg) and "s3cret" not in str(cfg.data_part())
    assert cfg.data_part()["source"]["path"] == "postgresql://ann:***@db/x"
    assert cfg.source.path == "postgresql://ann:s3cret@db/x"               # the live config keeps it
    ref = _sql("postgresql://ann:${PGPASSWORD}@db/x")
    (tmp_path / "c.yaml").write_text(dump_yaml(ref))
    assert load_config(tmp_path / "c.yaml") == ref                          # a reference round-trips


def test_the_version_id_does_not_depend_on_the_password():
    sources = [{"name": "samples", "bytes": 0, "sha256": "0" * 64}]
    ids = {provenance.content_version(sources, _sql(f"postgresql://ann:{pw}@db/x").data_part())
           for pw in ("one", "two")}
    assert len(ids) == 1
