"""The sql source against a real PostgreSQL server, started here from Debian's binaries and stopped."""
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
from pipeline.config import SourceConfig
from tests.pipeline.helpers import collect, tiny_schema, tiny_table, values

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
