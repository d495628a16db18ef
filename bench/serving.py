"""Benchmark `dcpipe serve` on loopback: dynamic batching against `max_batch_size: 1`, and cache hits.

    PYTHONPATH=. .venv/bin/python bench/serving.py [--workdir W --run RUN] [--requests 2000] [--seconds 20]

Without ``--run`` it first trains a tiny run (400 real MNIST rows, 1 epoch, 2 Horovod ranks) in a
temporary workdir. Then, for each server setting, it starts one real server process
(``python -m pipeline.cli serve``) and drives it from this process with a load generator: at each
concurrency (1, 8, 32, 64) that many keep-alive connections each send one-instance TF Serving
``:predict`` requests (raw MNIST records, pre-encoded, all different; the cache is off) back to
back, until ``--requests`` are answered or ``--seconds`` pass. Latency is from the first byte sent
to the last byte read. Last, with the cache on, one instance is sent ``--requests`` times at
concurrency 1 after one miss: the cache-hit latency. Prints Markdown tables.
"""
from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CONCURRENCY = (1, 8, 32, 64)
SETTINGS = {"batching (max_batch_size 32, max_wait_ms 2)": {"max_batch_size": 32, "max_wait_ms": 2, "cache_size": 0},
            "no batching (max_batch_size 1)": {"max_batch_size": 1, "max_wait_ms": 0, "cache_size": 0}}


def raw_requests(port: int, n: int) -> list[bytes]:
    """``n`` HTTP/1.1 :predict requests, one raw MNIST record (label left out) each."""
    from pipeline.ingest import embedded_mnist_path
    with gzip.open(embedded_mnist_path(), "rt") as fh:
        lines = fh.read().splitlines()[-n:]
    out = []
    for line in lines:
        body = json.dumps({"instances": [[int(v) for v in line.split(",")[:-1]]]}).encode()
        out.append(f"POST /v1/models/default:predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                   f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    return out


async def _exchange(reader, writer, payload: bytes) -> int:
    writer.write(payload)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))
    await reader.readexactly(length)
    return status


async def load(port: int, payloads: list[bytes], concurrency: int, max_requests: int, seconds: float) -> dict:
    """Drive ``concurrency`` connections until ``max_requests`` answers or ``seconds``; latencies in ms."""
    latencies, codes, sent = [], {}, iter(range(max_requests))
    deadline = time.perf_counter() + seconds

    async def client():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in sent:
                if time.perf_counter() > deadline:
                    break
                t0 = time.perf_counter()
                status = await _exchange(reader, writer, payloads[i % len(payloads)])
                latencies.append((time.perf_counter() - t0) * 1000)
                codes[status] = codes.get(status, 0) + 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    lat = np.array(latencies)
    return {"n": len(lat), "rps": len(lat) / wall, "p50": float(np.percentile(lat, 50)),
            "p99": float(np.percentile(lat, 99)), "codes": codes}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(workdir: Path, run: str, serve: dict, folder: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    config = folder / f"serve-{port}.yaml"
    config.write_text(json.dumps({"serve": serve}))           # JSON is YAML
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "serve", run, "--workdir", str(workdir),
                             "--port", str(port), "--config", str(config)], cwd=REPO,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    import urllib.request
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1) as r:
                if r.status == 200:
                    return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not become ready in 120 s")


def stop_server(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def train_tiny(folder: Path) -> tuple[Path, str]:
    from pipeline.job import run
    from pipeline.ingest import embedded_mnist_path
    from tests.conftest import small_config, take_balanced
    with gzip.open(embedded_mnist_path(), "rt") as fh:
        lines = fh.read().splitlines()
    csv = folder / "mnist_400.csv"
    csv.write_text("\n".join(take_balanced(lines, 40)) + "\n")
    summary = run(small_config(csv), workdir=folder / "work", log=lambda *_: None, show_progress=False)
    return folder / "work", summary["run_id"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--run")
    ap.add_argument("--requests", type=int, default=2000, help="answers per concurrency level, at most")
    ap.add_argument("--seconds", type=float, default=20, help="seconds per concurrency level, at most")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="dcpipe-bench-serve-"))
    workdir, run = (args.workdir, args.run) if args.run else train_tiny(folder)
    print(f"# bench/serving.py, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
          f"{os.cpu_count()} cores, run {run}\n")
    results = {}
    for name, serve in SETTINGS.items():
        proc, port = start_server(workdir, run, serve, folder)
        try:
            payloads = raw_requests(port, 1000)
            asyncio.run(load(port, payloads, 8, 200, 10))             # warm-up, not reported
            results[name] = {c: asyncio.run(load(port, payloads, c, args.requests, args.seconds)) for c in CONCURRENCY}
        finally:
            stop_server(proc)
    print("| setting | concurrency | answered | req/s | p50 ms | p99 ms | statuses |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, by_c in results.items():
        for c, r in by_c.items():
            print(f"| {name} | {c} | {r['n']} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['codes']} |")
    batched, single = results.values()
    print("\n| concurrency | throughput batching / no batching | p99 batching / no batching |")
    print("|---:|---:|---:|")
    for c in CONCURRENCY:
        print(f"| {c} | {batched[c]['rps'] / single[c]['rps']:.2f}x | {batched[c]['p99'] / single[c]['p99']:.2f} |")
    proc, port = start_server(workdir, run, {"cache_size": 1000}, folder)
    try:
        one = raw_requests(port, 1)
        asyncio.run(load(port, one, 1, 1, 10))                        # the one miss
        hit = asyncio.run(load(port, one, 1, args.requests, args.seconds))
    finally:
        stop_server(proc)
    print("\n| cache hit, concurrency 1 | answered | req/s | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|")
    print(f"| same instance | {hit['n']} | {hit['rps']:.0f} | {hit['p50']:.3f} | {hit['p99']:.3f} |")


if __name__ == "__main__":
    main()
