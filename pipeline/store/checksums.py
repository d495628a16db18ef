"""SHA-256 of every stored file (each Zarr chunk is one file), grouped by array, and their check.

``checksums.json`` maps each file's path inside the version folder to its digest. An array's digest
is the SHA-256 of its sorted ``path<TAB>digest`` lines; the manifest holds those and the digest of
``checksums.json`` itself, so the manifest pins every byte of the version.
"""
from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pipeline.provenance import file_sha256 as file_digest
from pipeline.store.layout import CHECKSUMS, DATA, MANIFEST

ALGORITHM = "sha256"
GROUP_METADATA = "(group metadata)"
QUARANTINE_GROUP = "quarantine"


def stored_files(folder: Path) -> list[str]:
    """Relative paths of every file of a version folder except the manifest and checksum index."""
    rels = (p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return sorted(r for r in rels if r not in (MANIFEST, CHECKSUMS))


def array_of(relpath: str) -> str:
    """The array (or group) a stored file belongs to: ``data.zarr/image/c/0/0/0/0`` -> ``image``."""
    parts = relpath.split("/")
    if parts[0] == DATA:
        return parts[1] if len(parts) > 2 else GROUP_METADATA
    return QUARANTINE_GROUP if parts[0].startswith("quarantine") else parts[0]


def digest_files(folder: Path, relpaths: list[str], threads: int = 2) -> dict[str, str]:
    """relpath -> SHA-256, hashed on ``threads`` threads (hashlib releases the GIL)."""
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return dict(zip(relpaths, pool.map(lambda r: file_digest(folder / r), relpaths)))


def array_digests(files: dict[str, str]) -> dict[str, str]:
    grouped: dict[str, list[str]] = {}
    for rel, digest in sorted(files.items()):
        grouped.setdefault(array_of(rel), []).append(f"{rel}\t{digest}\n")
    return {name: hashlib.sha256("".join(lines).encode()).hexdigest() for name, lines in grouped.items()}


def write_index(folder: Path, threads: int = 2) -> dict:
    """Hash every file of ``folder``, write ``checksums.json``; return the manifest's ``checksums``."""
    files = digest_files(folder, stored_files(folder), threads)
    index = json.dumps({"algorithm": ALGORITHM, "files": files}, indent=1, sort_keys=True).encode()
    (folder / CHECKSUMS).write_bytes(index)
    return {"algorithm": ALGORITHM, "index_sha256": hashlib.sha256(index).hexdigest(),
            "n_files": len(files), "arrays": array_digests(files)}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a stored version, in words a person reads."""

    array: str
    what: str

    def __str__(self) -> str:
        return f"{self.array}: {self.what}"


def _chunk_label(rel: str, variables: dict) -> str:
    """``data.zarr/image/c/3/0/0/0`` -> ``chunk c/3/0/0/0 (samples 3072-4095)`` when it is a chunk."""
    parts = rel.split("/")
    if len(parts) < 4 or parts[0] != DATA or parts[2] != "c":
        return f"file {rel}"
    key = "/".join(parts[2:])
    var = variables.get(parts[1], {})
    if var.get("dims", [None])[0] == "sample" and var.get("chunks") and parts[3].isdigit():
        rows, i = var["chunks"][0], int(parts[3])
        return f"chunk {key} (samples {i * rows}-{min((i + 1) * rows, var['shape'][0]) - 1})"
    return f"chunk {key}"


def verify(folder: Path, manifest: dict, threads: int = 2) -> list[Problem]:
    """Recompute every digest of a committed version; the problems found (none when intact)."""
    recorded = manifest.get("checksums") or {}
    variables = manifest.get("variables", {})
    try:
        raw = (folder / CHECKSUMS).read_bytes()
    except FileNotFoundError:
        return [Problem(CHECKSUMS, "missing; the version cannot be checked")]
    if hashlib.sha256(raw).hexdigest() != recorded.get("index_sha256"):
        return [Problem(CHECKSUMS, "does not match the manifest's index_sha256 (index damaged or edited)")]
    expected = json.loads(raw)["files"]
    present = set(stored_files(folder))
    label = lambda rel: _chunk_label(rel, variables)  # noqa: E731
    problems = [Problem(array_of(r), f"{label(r)} missing") for r in sorted(set(expected) - present)]
    problems += [Problem(array_of(r), f"unexpected {label(r)}") for r in sorted(present - set(expected))]
    actual = digest_files(folder, sorted(present & set(expected)), threads)
    problems += [Problem(array_of(r), f"{label(r)} damaged (sha256 {d[:12]}..., "
                                      f"expected {expected[r][:12]}...)")
                 for r, d in sorted(actual.items()) if d != expected[r]]
    for name, digest in sorted(array_digests(expected).items()):
        if recorded.get("arrays", {}).get(name) != digest:
            problems.append(Problem(name, "array digest differs from the manifest"))
    return problems
