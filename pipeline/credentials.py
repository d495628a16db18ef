"""Secrets in source URLs: masked wherever a URL is stored or shown, expanded only to connect.

A password written in ``source.path`` (``postgresql://user:secret@host/db``, or ``?password=``)
is replaced by ``***`` in the manifest, the version id, ``datasets show`` and a run's
``config.yaml``. The way to keep it out of files altogether is a ``${VAR}`` reference
(``postgresql://user:${PGPASSWORD}@host/db``): references are not secrets, so they are stored as
written, and :func:`expand` substitutes the environment only when the source connects. A URL
with no password leaves libpq to its own ``PGPASSWORD`` and ``~/.pgpass``.

>>> mask("postgresql+psycopg://ann:s3cr%40t@db:5432/x?sslmode=require&password=p")
'postgresql+psycopg://ann:***@db:5432/x?sslmode=require&password=***'
>>> mask("postgresql://ann:${PGPASSWORD}@db/x")
'postgresql://ann:${PGPASSWORD}@db/x'
"""
from __future__ import annotations

import os
import re
from urllib.parse import quote

from pipeline.errors import UserError

MASK = "***"
_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_USERINFO = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@?#]*):(?P<password>[^@/?#]*)@")
_QUERY = re.compile(r"(?P<head>[?&](?:password|passwd|pwd)=)(?P<password>[^&#]*)", re.IGNORECASE)


def _keep_refs(match: re.Match) -> str:
    password = match.group("password")
    shown = password if not password or _REF.fullmatch(password) else MASK
    return f"{match.group('head')}{':' if match.re is _USERINFO else ''}{shown}{'@' if match.re is _USERINFO else ''}"


def mask(url: str) -> str:
    """``url`` with any literal password replaced by ``***`` (``${VAR}`` references are kept)."""
    if not isinstance(url, str):
        return url
    return _QUERY.sub(_keep_refs, _USERINFO.sub(_keep_refs, url, count=1))


def expand(url: str, where: str = "source.path") -> str:
    """``url`` with each ``${VAR}`` replaced by the environment's value (URL-quoted), else UserError."""
    def value(match: re.Match) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise UserError(f"{where}: environment variable {name} is not set (referenced as ${{{name}}} in "
                            f"{mask(url)}); export {name}=... before running, or remove the reference and "
                            "use ~/.pgpass")
        return quote(os.environ[name], safe="")
    return _REF.sub(value, url)
