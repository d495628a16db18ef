"""SHA-256 of every stored file (each Zarr chunk is one file), grouped by array, and their check.

``checksums.json`` maps each file's path inside the version folder to its digest. An array's digest
is the SHA-256 of its sorted ``path<TAB>digest`` lines; the manifest holds those and the digest of
``checksums.json`` itself, so the manifest pins every byte of the version. The manifest's own
fields are pinned by its ``seal``: the SHA-256 of its canonical JSON (sorted keys, no whitespace)
without the ``seal`` field. The seal catches edits and damage, not a forger (who can recompute it).

Versions written before the seal existed have none: :func:`verify` reports them as sound, and
:func:`is_sealed` lets callers say so in a note ("unsealed, written by an older dcpipe").

Writing the index fsyncs every file as it is hashed, and then every folder, so that the commit
rename that follows never makes a version visible whose bytes are not yet on disk.
"""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from models.rundir import fsync_dir
from pipeline.progress import LocalBar
from pipeline.provenance import file_sha256 as file_digest
from pipeline.store.layout import CHECKSUMS, DATA, MANIFEST

ALGORITHM = "sha256"
SEAL = "seal"
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


def _digest_and_sync(path: Path, block: int = 1 << 20) -> str:
    """SHA-256 of a file, which is also fsynced (its bytes are in the page cache: cheap to read)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            digest.update(chunk)
        os.fsync(fh.fileno())
    return digest.hexdigest()


def fsync_folders(folder: Path) -> None:
    """fsync every folder under ``folder`` (deepest first) and ``folder`` itself."""
    for path in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        fsync_dir(path)
    fsync_dir(folder)


def digest_files(folder: Path, relpaths: list[str], threads: int = 2, sync: bool = False,
                 done=lambda: None) -> dict[str, str]:
    """relpath -> SHA-256, hashed on ``threads`` threads (hashlib releases the GIL); ``sync`` fsyncs
    each; ``done()`` is called after each file (a progress bar's update)."""
    one = _digest_and_sync if sync else file_digest

    def digest(rel: str) -> str:
        value = one(folder / rel)
        done()
        return value
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return dict(zip(relpaths, pool.map(digest, relpaths)))


def manifest_seal(manifest: dict) -> str:
    """SHA-256 of the canonical JSON of ``manifest`` without its ``seal`` field."""
    body = {k: v for k, v in manifest.items() if k != SEAL}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def is_sealed(manifest: dict) -> bool:
    return SEAL in manifest


def array_digests(files: dict[str, str]) -> dict[str, str]:
    grouped: dict[str, list[str]] = {}
    for rel, digest in sorted(files.items()):
        grouped.setdefault(array_of(rel), []).append(f"{rel}\t{digest}\n")
    return {name: hashlib.sha256("".join(lines).encode()).hexdigest() for name, lines in grouped.items()}


def write_index(folder: Path, threads: int = 2, show_progress: bool = False, log=print) -> dict:
    """Hash every file of ``folder``, write ``checksums.json``; return the manifest's ``checksums``
    (``show_progress``: a bar, or one line through ``log`` off a terminal)."""
    relpaths = stored_files(folder)
    with LocalBar("checksums", len(relpaths), show=show_progress, log=log) as bar:
        files = digest_files(folder, relpaths, threads, sync=True, done=bar.update)
    index = json.dumps({"algorithm": ALGORITHM, "files": files}, indent=1, sort_keys=True).encode()
    with open(folder / CHECKSUMS, "wb") as fh:
        fh.write(index)
        fh.flush()
        os.fsync(fh.fileno())
    fsync_folders(folder)
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


def _seal_problems(manifest: dict) -> list[Problem]:
    if not is_sealed(manifest) or manifest[SEAL] == manifest_seal(manifest):
        return []
    return [Problem(MANIFEST, f"edited or damaged (seal {str(manifest[SEAL])[:12]}... does not match its "
                              f"fields, {manifest_seal(manifest)[:12]}...)")]


def _index(folder: Path, manifest: dict) -> tuple[dict | None, list[Problem]]:
    """(relpath -> recorded digest, or None when the index cannot be trusted; its problems)."""
    try:
        raw = (folder / CHECKSUMS).read_bytes()
    except FileNotFoundError:
        return None, [Problem(CHECKSUMS, "missing; the version cannot be checked")]
    if hashlib.sha256(raw).hexdigest() != (manifest.get("checksums") or {}).get("index_sha256"):
        return None, [Problem(CHECKSUMS, "does not match the manifest's index_sha256 (index damaged or edited)")]
    return json.loads(raw)["files"], []


def quick_check(folder: Path, manifest: dict) -> list[Problem]:
    """The fast checks: the seal, the index digest, and that every indexed file exists (stat only)."""
    expected, problems = _index(folder, manifest)
    problems = _seal_problems(manifest) + problems
    if expected is None:
        return problems
    variables = manifest.get("variables", {})
    return problems + [Problem(array_of(r), f"{_chunk_label(r, variables)} missing")
                       for r in sorted(expected) if not (folder / r).is_file()]


def verify(folder: Path, manifest: dict, threads: int = 2) -> list[Problem]:
    """Recompute every digest of a committed version; the problems found (none when intact)."""
    recorded = manifest.get("checksums") or {}
    variables = manifest.get("variables", {})
    expected, problems = _index(folder, manifest)
    problems = _seal_problems(manifest) + problems
    if expected is None:
        return problems
    present = set(stored_files(folder))
    label = lambda rel: _chunk_label(rel, variables)  # noqa: E731
    problems += [Problem(array_of(r), f"{label(r)} missing") for r in sorted(set(expected) - present)]
    problems += [Problem(array_of(r), f"unexpected {label(r)}") for r in sorted(present - set(expected))]
    actual = digest_files(folder, sorted(present & set(expected)), threads)
    problems += [Problem(array_of(r), f"{label(r)} damaged (sha256 {d[:12]}..., "
                                      f"expected {expected[r][:12]}...)")
                 for r, d in sorted(actual.items()) if d != expected[r]]
    for name, digest in sorted(array_digests(expected).items()):
        if recorded.get("arrays", {}).get(name) != digest:
            problems.append(Problem(name, "array digest differs from the manifest"))
    return problems
