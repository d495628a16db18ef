"""One small image dataset prepared on an in-process LocalCluster with its task stream recorded:
shared by the progress (task names) and report (rendered HTML) tests."""
from collections import Counter
from dataclasses import dataclass

import pytest
from dask.utils import key_split
from distributed import Client, LocalCluster, get_task_stream

from tests.conftest import small_config, take_balanced


@dataclass(frozen=True)
class Staged:
    prepared: object            # pipeline.prepare.Prepared
    task_names: Counter         # key_split of every task the scheduler ran
    lines: list                 # what prepare logged (with show_progress on, off a terminal)


@pytest.fixture(scope="session")
def staged_prepare(tmp_path_factory, mnist_lines) -> Staged:
    from pipeline.prepare import prepare
    folder = tmp_path_factory.mktemp("staged")
    csv = folder / "small.csv"
    # 12 per digit, plus one bad line: the report shows a quarantine example
    csv.write_text("\n".join(take_balanced(mnist_lines, 12) + ["1,2,3"]) + "\n")
    cfg = small_config(csv, cluster={"workers": 1})
    lines = []
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster) as client, get_task_stream(client) as stream:
        prepared = prepare(cfg, folder / "datasets", client, log=lines.append, show_progress=True)
    return Staged(prepared, Counter(key_split(t["key"]) for t in stream.data), lines)
