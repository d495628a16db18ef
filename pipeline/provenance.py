"""Provenance: content hashes of sources and code, package versions, the git commit."""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import subprocess
from pathlib import Path

PACKAGES = ("dcpipe", "numpy", "pandas", "dask", "distributed", "dask-ml", "xarray", "zarr",
            "numcodecs", "tensorflow-cpu", "keras", "horovod", "mlxtend", "pydantic")
CODE_DIR = Path(__file__).resolve().parent


def file_sha256(path: Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def describe_sources(paths: list[Path]) -> list[dict]:
    """Name, size and SHA-256 of each source file, in the order given."""
    return [{"path": str(p), "name": p.name, "bytes": p.stat().st_size, "sha256": file_sha256(p)}
            for p in paths]


def code_hash() -> str:
    """SHA-256 over the pipeline package's source: a change to it makes a new dataset version."""
    digest = hashlib.sha256()
    for path in sorted(CODE_DIR.rglob("*.py")):
        digest.update(str(path.relative_to(CODE_DIR)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def content_version(sources: list[dict], data_config: dict) -> str:
    """The dataset version id: 16 hex digits over source content, data config and code."""
    payload = {"sources": [{k: s[k] for k in ("name", "bytes", "sha256")} for s in sources],
               "config": data_config, "code": code_hash()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def package_versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=CODE_DIR, capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
