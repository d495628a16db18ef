"""Is a version fit to train on? The check the application layer runs before it launches ranks.

:func:`check_ready` is fast by default (the manifest's seal, the checksum index's digest, and a
``stat`` of every indexed file); ``full=True`` adds the whole checksum pass of ``verify``. A
version that failed a quality gate when it was published is refused with that gate's message:
the verdict recorded at publish time stands (the gates are not part of the version id, so looser
gates later do not make another version of the same data).
"""
from __future__ import annotations

from pipeline.errors import UserError
from pipeline.store import checksums
from pipeline.store.layout import DatasetRef
from pipeline.store.refs import is_rejected


def _damaged(ref: DatasetRef, problems: list[checksums.Problem]) -> UserError:
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    return UserError(f"{ref}: {problems[0]}{more}; the version is damaged: see `dcpipe datasets verify {ref}`, "
                     "then gc it and prepare it again")


def check_ready(ref: DatasetRef, full: bool = False) -> None:
    """Raise a one-line ``UserError`` unless ``ref`` is intact (quick, or ``full``) and passed its gates."""
    manifest = ref.manifest()
    problems = checksums.quick_check(ref.path, manifest)
    if not problems and full:
        problems = checksums.verify(ref.path, manifest)
    if problems:
        raise _damaged(ref, problems)
    if is_rejected(manifest):
        quality = manifest["quality"]
        message = quality.get("message") or f"{ref}: quality gate {quality.get('gate')} failed"
        raise UserError(f"{message} (verdict recorded when {ref} was published; train on a version that "
                        "passed, see `dcpipe datasets list`)")
