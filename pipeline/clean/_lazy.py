"""Passing a lazy reduction (a Dask scalar or small Series) to every partition of a map_partitions."""
from __future__ import annotations


def broadcast(value):
    """A Delayed for a Dask collection (computed once, given whole to each partition); else the value."""
    if hasattr(value, "to_delayed"):
        parts = value.to_delayed()
        return parts[0] if isinstance(parts, list) and len(parts) == 1 else parts
    return value
