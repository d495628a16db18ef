"""Helpers for lazy stages: broadcasting a reduction to every partition; pinning a frame's tasks."""
from __future__ import annotations

import dask.dataframe as dd


def broadcast(value):
    """A Delayed for a Dask collection (computed once, given whole to each partition); else the value."""
    if hasattr(value, "to_delayed"):
        parts = value.to_delayed()
        return parts[0] if isinstance(parts, list) and len(parts) == 1 else parts
    return value


def shared(frame: dd.DataFrame) -> dd.DataFrame:
    """The same lazy frame, with its partitions pinned as fixed tasks.

    A frame used by several outputs (rows and quarantine, rows and a count) is otherwise
    optimised once per output and its partitions computed more than once.
    """
    return dd.from_delayed(frame.to_delayed(), meta=frame._meta, verify_meta=False)
