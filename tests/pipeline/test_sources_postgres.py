"""The sql source against a real PostgreSQL server, started here from Debian's binaries and stopped.

The server trusts the user ``dcpipe``; the user ``reader`` must give its password (scram-sha-256),
so the ``${PGPASSWORD}`` tests exercise real password authentication."""
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from pipeline import sources
from pipeline.cli import main
from pipeline.cluster import local_client
from pipeline.config import SourceConfig, dump_yaml
from pipeline.errors import UserError
from pipeline.prepare import prepare
from tests.pipeline.helpers import collect, tiny_job, tiny_schema, tiny_table, values

READER_PASSWORD = "r3ad@er/pw"      # characters that must be quoted inside a URL

pytestmark = pytest.mark.postgres


def _bin_dir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_owner(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run as the `postgres` user that Debian's package creates."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="module")
def postgres_url():
    bin_dir = _bin_dir()
    if bin_dir is None:
        reason = "PostgreSQL is not installed (run .ci/setup.d/30-postgres.sh: apt-get install postgresql)"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    # not under pytest's tmp folder: that one is private to root and the server runs as `postgres`
    folder = Path(tempfile.mkdtemp(prefix="dcpipe-pg-"))
    data, sock = folder / "data", folder / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        shutil.chown(sock, "postgres")
    port = _free_port()
    subprocess.run(_as_owner([f"{bin_dir}/initdb", "-D", str(data), "-U", "dcpipe", "--auth=trust", "-E", "UTF8"]),
                   check=True, capture_output=True)
    hba = data / "pg_hba.conf"       # the reader's password is checked; dcpipe is trusted
    hba.write_text("host all reader 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    subprocess.run(_as_owner([f"{bin_dir}/pg_ctl", "-D", str(data), "-l", str(folder / "log"), "-w", "-o",
                              f"-p {port} -k {sock} -c listen_addresses=127.0.0.1", "start"]),
                   check=True, capture_output=True)
    try:
        url = f"postgresql+psycopg://dcpipe@127.0.0.1:{port}/postgres"
        import sqlalchemy as sa
        engine = sa.create_engine(url)
        for _ in range(50):
            try:
                with engine.begin() as conn:
                    tiny_table().to_sql("samples", conn, index=False)
                    conn.execute(sa.text(f"CREATE ROLE reader LOGIN PASSWORD '{READER_PASSWORD}'"))
                    conn.execute(sa.text("GRANT SELECT ON samples TO reader"))
                break
            except sa.exc.OperationalError:
                time.sleep(0.2)
        engine.dispose()
        yield url
    finally:
        subprocess.run(_as_owner([f"{bin_dir}/pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop"]),
                       check=False, capture_output=True)
        stopped = not (data / "postmaster.pid").exists()
        shutil.rmtree(folder, ignore_errors=True)
        assert stopped, "the test's PostgreSQL server did not stop"


@pytest.mark.parametrize("query, order_by, parts", [
    ("samples", "a", 2),                                          # a table in partitions of 3 rows
    ("SELECT a, b, c, d, label FROM samples WHERE b >= 0", None, 1),   # a query
])
def test_postgres_table_or_query(postgres_url, query, order_by, parts):
    cfg = SourceConfig(kind="sql", path=postgres_url, query=query, order_by=order_by, rows_per_partition=3)
    ingested = sources.read(cfg, tiny_schema())
    assert ingested.records.npartitions == parts
    got = collect(ingested).sort_values("line")
    expected = tiny_table()
    if order_by is None:      # no ORDER BY: compare as a set of records
        got = got.sort_values("v0")
    assert values(got) == expected[["a", "b", "c", "d"]].to_numpy(dtype=float).tolist()
    assert sorted(got["line"]) == [1, 2, 3, 4]
    assert ingested.inputs[0]["path"].startswith("postgresql+psycopg://dcpipe@127.0.0.1")


def _reader_url(postgres_url: str, password: str) -> str:
    return postgres_url.replace("//dcpipe@", f"//reader:{password}@")


def test_a_password_from_the_environment_works_and_is_stored_nowhere(postgres_url, tmp_path, monkeypatch,
                                                                     capsys):
    url = _reader_url(postgres_url, "${PGPASSWORD}")
    cfg = tiny_job(url, source={"kind": "sql", "query": "samples", "order_by": "a", "rows_per_partition": 2},
                   split={"train": 0.5, "val": 0.25, "test": 0.25}, cluster={"workers": 1})
    monkeypatch.setenv("PGPASSWORD", "wrong")
    with pytest.raises(UserError, match=r"reader:\$\{PGPASSWORD\}@127\.0\.0\.1.*: query failed .*password "
                                        r"authentication failed"):
        sources.read(cfg.source, cfg.schema)                    # the server really checks it
    monkeypatch.setenv("PGPASSWORD", READER_PASSWORD)           # before the workers start: they inherit it
    with local_client(cfg.cluster, log=lambda *_: None) as client:
        done = prepare(cfg, tmp_path / "datasets", client, log=lambda *_: None, show_progress=False)
    assert done.manifest["records_out"] == 4
    assert done.manifest["config"]["source"]["path"] == url and done.manifest["sources"][0]["path"] == url
    assert main(["datasets", "show", "--json", str(done.ref), "--root", str(tmp_path / "datasets")]) == 0
    shown = capsys.readouterr().out
    for text in (shown, (done.ref.path / "manifest.json").read_text(), dump_yaml(cfg)):
        assert READER_PASSWORD not in text and "r3ad" not in text
    monkeypatch.delenv("PGPASSWORD")
    with pytest.raises(UserError, match=r"^source\.path: environment variable PGPASSWORD is not set"):
        sources.read(cfg.source, cfg.schema)


def test_a_literal_password_works_and_is_masked(postgres_url, tmp_path):
    from urllib.parse import quote
    url = _reader_url(postgres_url, quote(READER_PASSWORD, safe=""))
    cfg = SourceConfig(kind="sql", path=url, query="samples")
    ingested = sources.read(cfg, tiny_schema())
    assert len(collect(ingested)) == 4
    assert ingested.inputs[0]["path"] == _reader_url(postgres_url, "***")
    assert "r3ad" not in dump_yaml(tiny_job(url, source={"kind": "sql", "query": "samples"}))
