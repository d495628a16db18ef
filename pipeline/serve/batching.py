"""The dynamic batcher: requests wait at most ``max_wait_ms`` for a batch of at most ``max_batch_size``.

The wait is cut short when no other request for the model is in flight (``arriving``), so a lone
request is not delayed for company that cannot come. Each batch is padded (repeating its first
row) to the next of a few fixed sizes, the powers of two up to ``max_batch_size``, so the model
sees few shapes and never retraces; a request past ``max_queue`` waiting ones is refused at once
(``Overloaded``, a 503) instead of stalling.

>>> bucket_sizes(48)
(1, 2, 4, 8, 16, 32, 48)
>>> padded_size(5, bucket_sizes(48))
8
"""
from __future__ import annotations

import asyncio
import bisect
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np


class Overloaded(RuntimeError):
    """The queue is full: answer 503 and let the client retry."""


def bucket_sizes(max_batch_size: int) -> tuple[int, ...]:
    """Powers of two below ``max_batch_size``, then ``max_batch_size`` itself."""
    sizes, n = [], 1
    while n < max_batch_size:
        sizes.append(n)
        n *= 2
    return (*sizes, max_batch_size)


def padded_size(n: int, buckets: tuple[int, ...]) -> int:
    """The smallest bucket holding ``n`` rows."""
    return buckets[bisect.bisect_left(buckets, n)]


def pad(rows, size: int):
    """``rows`` (an array or a list) repeated from its first row up to ``size`` rows."""
    extra = size - len(rows)
    if isinstance(rows, np.ndarray):
        return np.concatenate([rows, np.repeat(rows[:1], extra, axis=0)]) if extra else rows
    return list(rows) + [rows[0]] * extra


def concat(parts: list):
    return np.concatenate(parts) if isinstance(parts[0], np.ndarray) else [r for p in parts for r in p]


@dataclass
class _Job:
    rows: object                 # np.ndarray (tables) or list[str] (text)
    future: asyncio.Future


class Batcher:
    """Collects submitted rows into padded batches for ``predict`` (rows -> probabilities, one thread)."""

    def __init__(self, predict: Callable, max_batch_size: int, max_wait_ms: float, max_queue: int,
                 on_batch: Callable[[int], None] = lambda n: None):
        self.predict, self.max_batch_size, self.on_batch = predict, max_batch_size, on_batch
        self.max_wait = max_wait_ms / 1000
        self.buckets = bucket_sizes(max_batch_size)
        self._queue: asyncio.Queue = asyncio.Queue(maxsize=max_queue)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dcpipe-model")
        self._task: asyncio.Task | None = None
        self.arriving = 0        # requests being read and checked, not yet submitted (``expect``)

    @property
    def depth(self) -> int:
        """Requests waiting for the model."""
        return self._queue.qsize()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        while not self._queue.empty():
            self._queue.get_nowait().future.cancel()
        self._executor.shutdown(wait=False)

    @contextlib.contextmanager
    def expect(self):
        """Mark one request as on its way (read, checked, then submitted or refused)."""
        self.arriving += 1
        try:
            yield
        finally:
            self.arriving -= 1

    async def submit(self, rows) -> np.ndarray:
        """Probabilities of ``rows``; ``Overloaded`` at once when ``max_queue`` requests wait."""
        job = _Job(rows, asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            raise Overloaded(f"{self._queue.maxsize} requests are waiting for the model (serve.max_queue); "
                             "retry later") from None
        return await job.future

    async def warm_up(self, row) -> None:
        """One call per bucket size, so the first requests do not pay for tracing."""
        for size in self.buckets:
            await asyncio.get_running_loop().run_in_executor(self._executor, self.predict, pad(row, size))

    async def _run(self) -> None:
        carry = None
        while True:
            first, carry = carry or await self._queue.get(), None
            jobs, carry = await self._collect(first)
            await self._answer(jobs)

    async def _collect(self, first: _Job) -> tuple[list[_Job], _Job | None]:
        """``first`` and the jobs that join it within ``max_wait``; the one that did not fit is carried."""
        loop = asyncio.get_running_loop()
        jobs, n, deadline = [first], len(first.rows), loop.time() + self.max_wait
        while n < self.max_batch_size:
            try:
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0 or self.arriving == 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            if n + len(job.rows) > self.max_batch_size:
                return jobs, job
            jobs.append(job)
            n += len(job.rows)
        return jobs, None

    async def _answer(self, jobs: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        rows = concat([j.rows for j in jobs])
        try:
            parts = []
            for start in range(0, len(rows), self.max_batch_size):
                chunk = rows[start:start + self.max_batch_size]
                self.on_batch(len(chunk))
                probs = await loop.run_in_executor(self._executor, self.predict,
                                                   pad(chunk, padded_size(len(chunk), self.buckets)))
                parts.append(probs[:len(chunk)])
            probs = np.concatenate(parts)
        except Exception as exc:  # noqa: BLE001 - the model's failure goes to every waiting request
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        start = 0
        for job in jobs:
            if not job.future.done():
                job.future.set_result(probs[start:start + len(job.rows)])
            start += len(job.rows)
