"""``NAME@VERSION`` in one place: parse a spec, resolve it to a committed version, and tags.

A spec is ``NAME`` or ``NAME@SELECTOR``; the selector is one of

- ``latest`` (also no selector): the newest version that passed its quality gates,
- a full version id (8-64 lowercase hex digits) or a unique prefix of one (at least 4),
- a tag set by ``dcpipe datasets tag NAME@VERSION TAG``, kept in ``<root>/<name>/tags.json``.

Tags never look like hex and are never ``latest``, so the three forms cannot be confused.

>>> parse_spec("mnist@3f2a")
('mnist', '3f2a')
>>> is_tag("v0"), is_tag("beef"), is_tag("latest")
(True, False, False)
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from pathlib import Path

from models.rundir import atomic_write_text
from pipeline.errors import UserError
from pipeline.store.layout import LATEST, VERSION_RE, DatasetRef, check_name, check_version, versions

TAGS = "tags.json"
MIN_PREFIX = 4
HEX_RE = re.compile(r"^[0-9a-f]+$")
TAG_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
_HEXISH = re.compile(r"^[0-9a-fA-F]+$")
SELECTOR_HELP = ("give a version (8-64 lowercase hex digits, e.g. 3f2a9c0d1b7e4a55, or a unique prefix of "
                 f"at least {MIN_PREFIX}), a tag, or 'latest'")


def is_tag(text: str) -> bool:
    """True if ``text`` may name a tag: a letter first, not hex-looking, not ``latest``."""
    return bool(TAG_RE.match(text)) and not _HEXISH.match(text) and text != LATEST


def check_selector(selector: str) -> str:
    """``selector`` if it is ``latest``, hex (a version or prefix) or a tag name, else UserError."""
    if selector == LATEST or is_tag(selector) or (HEX_RE.match(selector) and len(selector) <= 64):
        if HEX_RE.match(selector) and len(selector) < MIN_PREFIX:
            raise UserError(f"dataset version {selector!r} is too short; {SELECTOR_HELP}")
        return selector
    raise UserError(f"dataset version {selector!r} is not allowed; {SELECTOR_HELP}")


def parse_spec(spec: str) -> tuple[str, str]:
    """``NAME[@SELECTOR]`` -> (name, selector or 'latest'), both validated (not resolved)."""
    name, _, selector = spec.partition("@")
    return check_name(name), check_selector(selector or LATEST)


def is_rejected(manifest: dict) -> bool:
    """True when the version failed a quality gate at publish time (``manifest["quality"]``)."""
    return (manifest.get("quality") or {}).get("passed") is False


def rejected_gate(manifest: dict) -> str | None:
    return (manifest.get("quality") or {}).get("gate") if is_rejected(manifest) else None


def _latest(root: Path, name: str) -> DatasetRef:
    known = versions(root, name)
    if not known:
        raise UserError(f"{Path(root) / name}: dataset {name!r} has no versions; "
                        "prepare one with `dcpipe prepare` (see `dcpipe datasets list`)")
    usable = [ref for ref in known if not is_rejected(ref.manifest())]
    if not usable:
        newest = known[-1]
        raise UserError(f"{name}@latest: all {len(known)} version(s) of {name!r} failed a quality gate "
                        f"(newest {newest}: {rejected_gate(newest.manifest())}); fix the data or the gates "
                        "and prepare again (see `dcpipe datasets list`)")
    return usable[-1]


def _by_hex(root: Path, name: str, selector: str) -> DatasetRef:
    if VERSION_RE.match(selector):
        ref = DatasetRef(root=Path(root), name=name, version=selector)
        if ref.exists():
            return ref
    found = [ref for ref in versions(root, name) if ref.version.startswith(selector)]
    if len(found) > 1:
        listed = ", ".join(ref.version for ref in found[:5]) + (", ..." if len(found) > 5 else "")
        raise UserError(f"{name}@{selector}: version prefix is ambiguous ({len(found)} versions: {listed}); "
                        "give more digits")
    if not found:
        raise UserError(f"{Path(root) / name / selector}: dataset version {name}@{selector} not found; "
                        "see `dcpipe datasets list`")
    return found[0]


def _by_tag(root: Path, name: str, tag: str) -> DatasetRef:
    version = tags(root, name).get(tag)
    if version is None:
        raise UserError(f"{name}@{tag}: dataset {name!r} has no tag {tag!r}; see `dcpipe datasets list`, "
                        f"or tag a version with `dcpipe datasets tag {name}@VERSION {tag}`")
    ref = DatasetRef(root=Path(root), name=name, version=version)
    if not ref.exists():
        raise UserError(f"{name}@{tag}: tag {tag!r} points to {ref}, which is no longer stored; "
                        f"tag another version with `dcpipe datasets tag {name}@VERSION {tag}`")
    return ref


def resolve(root: Path, name: str, selector: str = LATEST) -> DatasetRef:
    """The committed version ``name@selector`` under ``root`` (see the module docstring)."""
    check_name(name)
    selector = check_selector(selector)
    if selector == LATEST:
        return _latest(root, name)
    if HEX_RE.match(selector):
        return _by_hex(root, name, selector)
    return _by_tag(root, name, selector)


def resolve_spec(root: Path, spec: str) -> DatasetRef:
    """``NAME``, ``NAME@latest``, ``NAME@<version or prefix>`` or ``NAME@<tag>`` -> a committed version."""
    return resolve(root, *parse_spec(spec))


def tags(root: Path, name: str) -> dict[str, str]:
    """Tag -> version of dataset ``name`` (empty when it has none)."""
    path = Path(root) / check_name(name) / TAGS
    try:
        found = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: unreadable tags ({exc}); fix or remove the file") from None
    return {t: v for t, v in found.items() if is_tag(t) and isinstance(v, str) and VERSION_RE.match(v)}


def tags_of(ref: DatasetRef) -> list[str]:
    """The tags that name ``ref``, sorted."""
    return sorted(t for t, v in tags(ref.root, ref.name).items() if v == ref.version)


@contextlib.contextmanager
def _folder_lock(folder: Path):
    """flock(2) on the dataset folder itself: tag writers queue, and no lock file is left behind."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def tag(ref: DatasetRef, name: str) -> str | None:
    """Point tag ``name`` at the committed ``ref``; the version it pointed to before (or None)."""
    if not is_tag(name):
        raise UserError(f"tag {name!r} is not allowed; a tag starts with a letter, has 1-64 letters, digits, "
                        "'.', '_' or '-', is not all hex digits (those are versions) and is not 'latest'; "
                        "e.g. v1 or prod")
    if not ref.exists():
        raise UserError(f"{ref.path}: dataset version {ref} not found; see `dcpipe datasets list`")
    check_version(ref.version)
    with _folder_lock(ref.root / ref.name):
        current = tags(ref.root, ref.name)
        before = current.get(name)
        current[name] = ref.version
        atomic_write_text(ref.root / ref.name / TAGS, json.dumps(dict(sorted(current.items())), indent=1) + "\n")
    return before if before != ref.version else None
