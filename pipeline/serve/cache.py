"""The response cache: answers keyed by (bundle content hash, sha256 of the instance's bytes).

The instance's bytes are those of the checked record (float32 values, or the text as UTF-8), so
``[1, 2]`` and ``"1,2"`` are one entry. A new bundle has a new hash: it never serves an old
model's answers. In front of those, the same LRU keeps whole answers keyed by (bundle hash,
protocol, sha256 of the request body's bytes): a repeated body is answered from its stored JSON
without being parsed, checked or encoded again.

>>> cache = AnswerCache(capacity=2)
>>> cache.put(("b1", "x"), 1); cache.put(("b1", "y"), 2); cache.put(("b1", "z"), 3)
>>> cache.get(("b1", "x")), cache.get(("b1", "z")), cache.stats()["size"]
(None, 3, 2)
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict


def instance_key(row) -> str:
    """sha256 of a checked instance's bytes: a float32 row, or a text."""
    raw = row.encode() if isinstance(row, str) else row.tobytes()
    return hashlib.sha256(raw).hexdigest()


def body_key(raw: bytes) -> bytes:
    """sha256 of a request body's bytes."""
    return hashlib.sha256(raw).digest()


class AnswerCache:
    """An in-process LRU of at most ``capacity`` answers; ``capacity`` 0 keeps none."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key):
        """The answer, or None (a miss)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
            self.misses += 1
            return None

    def peek(self, key):
        """The answer or None, not counted as a hit or a miss (a whole-body lookup)."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def count_hits(self, n: int) -> None:
        """``n`` instances answered from a whole-body entry."""
        with self._lock:
            self.hits += n

    def put(self, key, value) -> None:
        if self.capacity == 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def stats(self) -> dict:
        looked = self.hits + self.misses
        return {"hits": self.hits, "misses": self.misses, "size": len(self._items), "capacity": self.capacity,
                "hit_ratio": round(self.hits / looked, 4) if looked else 0.0}
