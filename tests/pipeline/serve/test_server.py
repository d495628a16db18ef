"""A real `dcpipe serve` process on a free loopback port, against a real 2-rank run: good, bad and
concurrent requests over HTTP, gzip, /metrics, cache hits, load/unload, 503 from a full queue."""
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from pipeline.cli import main as cli_main
from tests.models.helpers import REPO, rank_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m pipeline.cli serve ...` as a subprocess; stopped by the pid it started."""

    def __init__(self, workdir: Path, runs: list[str], serve: dict | None = None):
        self.port = free_port()
        args = [sys.executable, "-m", "pipeline.cli", "serve", runs[0], *[a for r in runs[1:] for a in ("--run", r)],
                "--workdir", str(workdir), "--port", str(self.port)]
        if serve:
            config = workdir.parent / f"serve-{self.port}.yaml"
            config.write_text(yaml.safe_dump({"serve": serve}))
            args += ["--config", str(config)]
        self.log = open(workdir.parent / f"serve-{self.port}.log", "w")
        self.proc = subprocess.Popen(args, cwd=REPO, env=rank_env(), stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, Path(self.log.name).read_text()
            try:
                if request(self.url + "/v2/health/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"not ready after {timeout} s: {Path(self.log.name).read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def request(url: str, body=None, headers=None) -> tuple[int, dict, dict]:
    """(status, JSON or text, headers) of a GET, or of a POST when ``body`` is given (bytes or JSON)."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, raw, hdrs = r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        status, raw, hdrs = e.code, e.read(), dict(e.headers)
    if hdrs.get("content-encoding") == "gzip":
        raw = gzip.decompress(raw)
    try:
        return status, json.loads(raw), hdrs
    except ValueError:
        return status, raw.decode(), hdrs


@pytest.fixture(scope="module")
def server(trained):
    workdir, run_id, _ = trained
    srv = Server(workdir, [run_id], serve={"max_batch_size": 16, "max_wait_ms": 5})
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def _records(lines):
    return [[int(v) for v in line.split(",")[:-1]] for line in lines], [int(line.rsplit(",", 1)[1]) for line in lines]


@pytest.mark.horovod
def test_health_metadata_and_both_protocols_agree(server, trained):
    _, run_id, lines = trained
    instances, labels = _records(lines)
    assert request(server.url + "/v2/health/live")[:2] == (200, {"live": True})
    status, meta, _ = request(server.url + f"/v2/models/{run_id}")
    assert status == 200 and meta["name"] == run_id and meta["inputs"][0]["shape"] == [-1, 784]
    status, v1, _ = request(server.url + "/v1/models/default:predict", {"instances": instances})
    assert status == 200 and len(v1["predictions"]) == len(labels) == len(v1["probabilities"])
    assert all(abs(sum(p) - 1) < 1e-4 for p in v1["probabilities"])
    accuracy = sum(p == y for p, y in zip(v1["predictions"], labels)) / len(labels)
    assert accuracy > 0.3, accuracy                        # 1 epoch on 320 rows: well above chance
    flat = [v for inst in instances for v in inst]
    status, v2, _ = request(server.url + f"/v2/models/{run_id}/infer",
                            {"id": "r1", "inputs": [{"name": "record", "shape": [len(instances), 784],
                                                     "datatype": "INT32", "data": flat}]})
    assert status == 200 and v2["id"] == "r1" and v2["model_version"] == meta["versions"][0]
    assert v2["outputs"][0]["data"] == v1["predictions"]
    csv_lines = [line.rsplit(",", 1)[0] for line in lines]          # raw CSV records, label left out
    assert request(server.url + "/v1/models/default:predict", {"instances": csv_lines})[1]["predictions"] == \
        v1["predictions"]


BAD = [  # body, status, rule named in the error
    (b"not json", 400, r"body: not valid JSON"),
    (b'{"instances": [[NaN]]}', 400, r"NaN is not a number JSON allows"),
    (b"[1, 2]", 400, r"expected a JSON object"),
    ({"rows": []}, 400, r'expected \{"instances"'),
    ({"instances": []}, 400, r"instances: no instances"),
    ({"instances": [[0] * 300]}, 400, r"instances\[0\]: expected 784 numeric fields .* got 300"),
    ({"instances": [[0] * 784, [0] * 785]}, 400, r"instances\[1\]: expected 784 .* got 785"),
    ({"instances": [["0"] * 784]}, 400, r"instances\[0\]: field 0 must be a number \(got str"),
    ({"instances": [[0] * 783 + [256]]}, 400, r"field 783 is 256, outside the schema's range"),
    ({"instances": ["1,2,3"]}, 400, r"expected 784 numeric fields .* got 3"),   # predict_csv's reshape error
]


@pytest.mark.horovod
@pytest.mark.parametrize("body, status, rule", BAD)
def test_bad_input_is_a_4xx_naming_the_rule(server, body, status, rule):
    import re
    got, answer, _ = request(server.url + "/v1/models/default:predict", body)
    assert got == status and re.search(rule, answer["error"]), answer


@pytest.mark.horovod
def test_bad_v2_tensors_and_unknown_models(server):
    status, answer, _ = request(server.url + "/v2/models/default/infer",
                                {"inputs": [{"name": "x", "shape": [2, 784], "datatype": "FP32", "data": [0] * 784}]})
    assert status == 400 and "holds 1568 values but data has 784" in answer["error"]
    status, answer, _ = request(server.url + "/v1/models/nope:predict", {"instances": [[0] * 784]})
    assert status == 404 and "model 'nope' is not loaded" in answer["error"]


@pytest.mark.horovod
def test_concurrent_requests_are_batched_cached_gzipped_and_measured(server, trained):
    _, run_id, lines = trained
    instances, _ = _records(lines)
    url = server.url + "/v1/models/default:predict"
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda inst: request(url, {"instances": [inst]}), instances * 3))
    assert all(a[0] == 200 for a in answers)
    by_instance = {}
    for inst, answer in zip(instances * 3, answers):
        by_instance.setdefault(json.dumps(inst), set()).add(answer[1]["predictions"][0])
    assert all(len(v) == 1 for v in by_instance.values())            # the same answer every time
    _, meta, _ = request(server.url + f"/v2/models/{run_id}")
    assert meta["cache"]["hits"] >= len(instances) and meta["cache"]["size"] >= len(instances)
    _, text, hdrs = request(server.url + "/metrics", headers={"Accept-Encoding": "gzip"})
    assert hdrs.get("content-encoding") == "gzip"
    for name in ("dcpipe_serve_request_seconds_bucket", "dcpipe_serve_batch_size_bucket",
                 "dcpipe_serve_queue_depth", "dcpipe_serve_cache_hits_total", "dcpipe_serve_cache_misses_total"):
        assert f'{name}{{' in text, name
    batches = [line for line in text.splitlines() if line.startswith("dcpipe_serve_batch_size_count")]
    calls = float(batches[0].split()[-1])
    assert calls < len(instances) * 3                                 # fewer model calls than requests
    _, big, hdrs = request(url, {"instances": instances}, headers={"Accept-Encoding": "gzip"})
    assert hdrs.get("content-encoding") == "gzip" and len(big["predictions"]) == len(instances)


@pytest.mark.horovod
def test_unload_and_load_without_restart(server, trained):
    _, run_id, lines = trained
    instances, _ = _records(lines[:1])
    assert request(server.url + f"/v2/repository/models/{run_id}/unload", b"")[0] == 200
    assert request(server.url + "/v2/health/ready")[0] == 503
    assert request(server.url + "/v1/models/default:predict", {"instances": instances})[0] == 404
    status, answer, _ = request(server.url + f"/v2/repository/models/{run_id}/load", b"")
    assert status == 200 and answer["loaded"] is True
    assert request(server.url + "/v1/models/default:predict", {"instances": instances})[0] == 200
    status, answer, _ = request(server.url + "/v2/repository/models/no-such-run/load", b"")
    assert status == 400 and "no such run" in answer["error"]


@pytest.mark.horovod
def test_a_full_queue_answers_503_at_once(trained):
    workdir, run_id, lines = trained
    instances, _ = _records(lines)
    srv = Server(workdir, [run_id], serve={"max_batch_size": 1, "max_queue": 1, "cache_size": 0, "max_wait_ms": 0})
    try:
        srv.wait_ready()
        url = srv.url + "/v1/models/default:predict"
        statuses = []
        for _ in range(5):                                            # bursts until the queue overflows
            with ThreadPoolExecutor(32) as pool:
                statuses += [a[0] for a in pool.map(lambda i: request(url, {"instances": [instances[i % len(instances)]]}),
                                                    range(64))]
            if 503 in statuses:
                break
        assert set(statuses) <= {200, 503} and 200 in statuses and 503 in statuses, statuses
    finally:
        srv.stop()
    assert srv.proc.returncode is not None


def test_a_run_that_is_not_finished_is_refused_in_one_line(tmp_path, capsys):
    run_dir = tmp_path / "work" / "runs" / "20261203-101500-ab12"
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text(json.dumps({"state": "failed"}))
    assert cli_main(["serve", "20261203-101500-ab12", "--workdir", str(tmp_path / "work")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "run 20261203-101500-ab12 is failed, not finished; serve a finished run" in err


def _copy_run(workdir: Path, run_id: str, new_id: str, label_prefix: str) -> str:
    """The run folder copied under ``new_id``, its labels renamed (``7`` -> ``b7``) so that an answer
    shows which of the served models gave it; the network and its weights are the same."""
    import shutil
    target = workdir / "runs" / new_id
    if not target.exists():
        shutil.copytree(workdir / "runs" / run_id, target)
        spec_file = target / "bundle" / "transform.json"
        spec = json.loads(spec_file.read_text())
        spec["labels"] = [f"{label_prefix}{v}" for v in spec["labels"]]
        spec_file.write_text(json.dumps(spec))
    return new_id


@pytest.mark.horovod
def test_two_runs_at_once_answer_by_name_and_a_third_loads_and_unloads_without_restart(trained):
    workdir, run_id, lines = trained
    instances, _ = _records(lines)
    second = _copy_run(workdir, run_id, f"{run_id}-b", "b")
    third = _copy_run(workdir, run_id, f"{run_id}-c", "c")
    srv = Server(workdir, [run_id, second])
    try:
        srv.wait_ready()
        assert request(srv.url + "/v2/health/ready")[1]["models"] == [run_id, second]
        answers = {name: request(srv.url + f"/v1/models/{name}:predict", {"instances": instances})
                   for name in (run_id, second, "default")}
        assert all(a[0] == 200 for a in answers.values()), answers
        first_labels = answers[run_id][1]["predictions"]
        assert all(isinstance(v, int) for v in first_labels)
        assert answers[second][1]["predictions"] == [f"b{v}" for v in first_labels]    # the second model answered
        assert answers["default"][1]["predictions"] == first_labels                     # default: the first loaded
        versions = {name: request(srv.url + f"/v2/models/{name}")[1]["versions"][0] for name in (run_id, second)}
        assert versions[run_id] != versions[second]                                     # two bundles, two hashes
        assert request(srv.url + f"/v1/models/{third}:predict", {"instances": instances})[0] == 404
        status, loaded, _ = request(srv.url + f"/v2/repository/models/{third}/load", b"")
        assert status == 200 and loaded["loaded"] is True
        status, answer, _ = request(srv.url + f"/v1/models/{third}:predict", {"instances": instances})
        assert status == 200 and answer["predictions"] == [f"c{v}" for v in first_labels]
        assert request(srv.url + f"/v2/repository/models/{second}/unload", b"")[0] == 200
        assert request(srv.url + f"/v1/models/{second}:predict", {"instances": instances})[0] == 404
        assert request(srv.url + f"/v1/models/{run_id}:predict", {"instances": instances})[1]["predictions"] == \
            first_labels                                                                 # the others keep serving
        assert request(srv.url + "/v2/health/ready")[1]["models"] == [run_id, third]
        assert srv.proc.poll() is None                                                  # the same process throughout
    finally:
        srv.stop()
