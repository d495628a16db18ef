"""Prepare's Dask work under stage names, with a progress bar per stage.

Dask names a task after the operation that made it (``getitem``, ``assign``, or a fused chain such
as ``getitem-astype-mean-values-histogram-sum-operation-sum``); people watching the dashboard look
for the pipeline's stages. :func:`stage_names` renames every task of a graph ``<stage>-<token>``:

- a task whose own name says its stage keeps that stage (``validate``, ``clean-missing`` ->
  ``clean``, ``features-split`` -> ``split``, ``augment-image`` -> ``augment``, ``store-map`` ->
  ``write``...; when a fused name says several, the latest in pipeline order);
- any other task takes the latest stage of its inputs, so that the ``getitem`` after ``validate``
  is ``validate`` too, and a task with no named input takes the phase's stage (``ingest`` for
  the source's blocks); the report's reductions are ``report-statistics`` by the rows they reduce
  (``report-rows``, ``report-text-lengths``), computed in the same graph as the split.

Dask's P2P shuffle tasks (``shuffle-transfer``, ``shuffle-barrier``, ``p2pshuffle``) keep their
names: the shuffle finds its barrier by name.

The stages themselves stay lazy: :func:`persist` and :func:`compute` are called by prepare (and
the store's one compute) with the client; they send the renamed graph, show a bar per stage while
it runs (tqdm on a terminal; one line per stage when it is done otherwise, no carriage returns in
log files), and return what ``client.persist`` / ``client.compute`` + ``gather`` would.

>>> stage_of_name("clean-dup-flags"), stage_of_name("rechunk-merge-augment-repeat-split")
('clean', 'augment')
>>> stage_of_name("getitem") is None
True
"""
from __future__ import annotations

import sys
import time
import warnings
from graphlib import TopologicalSorter

from dask.base import collections_to_expr, is_dask_collection, tokenize
from dask.core import flatten
from dask.utils import key_split
from distributed import Client, as_completed
from distributed.diagnostics.progressbar import MultiProgressBar

# Pipeline order: a fused task doing several takes the last one.
STAGES = ("ingest", "validate", "clean", "split", "features", "augment", "write", "report-statistics",
          "report-histograms", "checksums", "report")
# (what a task's name holds, its stage); ``features-image``/``features-tokens`` build the model input.
NAME_RULES = (("validate", "validate"), ("clean", "clean"), ("neardup", "clean"), ("features-hash", "split"),
              ("features-split", "split"), ("class_cutoffs", "split"), ("sort_key", "split"), ("features", "features"),
              ("augment", "augment"), ("store-map", "write"), ("toparquet", "write"),
              ("report", "report-statistics"))

# Keys that are Dask's protocol: P2P shuffles find their barrier task by its name.
KEPT = ("shuffle", "p2pshuffle")


def stage_of_name(name: str) -> str | None:
    """The stage a task name (its ``key_split``) says, or None when it names an operation only."""
    said = []
    for word, stage in NAME_RULES:   # the more specific words first: features-split is split, not features
        if word in name:
            said.append(stage)
            name = name.replace(word, "")
    return max(said, key=STAGES.index) if said else None


def _name(key) -> str:
    return key[0] if isinstance(key, tuple) else str(key)


def _renamed(key, stage: str):
    new = f"{stage}-{tokenize(_name(key))}"
    return (new, *key[1:]) if isinstance(key, tuple) else new


def stage_names(graph: dict, default: str) -> tuple[dict, dict]:
    """(``graph`` with every key named by its stage, old key -> new key); inputs outside the graph
    (persisted futures) keep their keys."""
    deps = {k: [d for d in node.dependencies if d in graph] for k, node in graph.items()}
    stage: dict = {}
    for key in TopologicalSorter(deps).static_order():
        inherited = [stage[d] for d in deps[key]]
        stage[key] = (stage_of_name(key_split(key)) or
                      (max(inherited, key=STAGES.index) if inherited else default))
    mapping = {k: k if key_split(k).startswith(KEPT) else _renamed(k, stage[k]) for k in graph}
    renamed = {mapping[k]: _producing(node, node.substitute({d: mapping[d] for d in node.dependencies
                                                             if d in mapping}, key=mapping[k]))
               for k, node in graph.items()}
    return renamed, mapping


def _producing(node, renamed):
    """``renamed`` still marked a data producer when ``node`` was one (dask's ``Task.substitute``
    drops the mark, dask 2026.8). The scheduler queues data producers (root-task queuing: a worker
    gets the next block once it has a thread free) and runs the work on the blocks it read first;
    unmarked, every block of a 20 GB file was sent to the workers at once and read ahead of the
    cleaning that consumes it."""
    if not node.data_producer or renamed.data_producer:
        return renamed
    from dask._task_spec import Task
    if type(renamed) is not Task:   # an Alias or DataNode computes nothing: never a producer
        return renamed
    return Task(renamed.key, renamed.func, *renamed.args, _data_producer=True, **renamed.kwargs)


def _submit(client: Client, expr, default: str, show: bool, log, sent=None):
    """Send ``expr``'s graph renamed by stage; wait for it with a bar per stage; the futures, nested
    as ``expr.__dask_keys__()``. ``sent()``, if given, is called once the graph is with the scheduler."""
    from dask._task_spec import convert_legacy_graph   # tuples of older layers -> Task nodes (dask 2026.8)
    keys = expr.__dask_keys__()
    graph, mapping = stage_names(convert_legacy_graph(dict(expr.__dask_graph__())), default)
    futures = client.get(graph, _nested(keys, mapping), sync=False)
    if sent is not None:
        sent()
    flat = list(flatten(futures))
    if show:
        StageBars(flat, client, log).show()
    for done in as_completed(flat):
        if done.status == "error":   # fail at the first failed task, not once every other one ended (or stalled)
            try:
                done.result()        # raises the task's own exception here
            finally:                 # the rest stop: nothing wants them (released, not cancelled: see release)
                release(client, flat)
    return keys, futures


def _nested(keys, mapping):
    return [_nested(k, mapping) for k in keys] if isinstance(keys, list) else mapping[keys]


def _expr(collections: list, finalize: bool = False):
    """The optimised expression of ``collections`` (wrapped as ``Client.compute`` does, ``finalize``)."""
    with warnings.catch_warnings():   # mixing a Delayed (to_zarr) and expressions materialises both: we do anyway
        warnings.filterwarnings("ignore", message="Computing mixed collections", category=UserWarning)
        expr = collections_to_expr(collections, optimize_graph=True)
        if finalize:
            from dask._expr import FinalizeCompute   # what Client.compute wraps its expression in (dask 2026.8)
            expr = FinalizeCompute(expr)
        return expr.optimize()


def persist(client: Client, collections: list, default: str, show: bool = True, log=print) -> list:
    """``client.persist(collections)`` with the tasks named by stage; waits until they are in memory."""
    expr = _expr(collections)
    keys, futures = _submit(client, expr, default, show, log)
    return [func(dict(zip(flatten([ks]), flatten([fs]))), *args)
            for (func, args), ks, fs in zip((c.__dask_postpersist__() for c in collections), keys, futures)]


def release(client: Client, futures: list, timeout: float = 10.0) -> None:
    """Let the cluster forget ``futures`` now (what ``persist`` gave, ``futures_of`` its collections;
    a failed stage's others), not when whatever holds them is garbage: release each future, and wait
    (up to ``timeout`` s) until no worker holds their results (a release is a message, sent on the
    client's own loop; a key that another future or client still wants stays, and the wait then ends
    at the timeout).

    Released, not cancelled: ``client.cancel`` also cancels every dependent task, and distributed
    2026.8's scheduler fails its own ``assert ts.who_wants`` on a dependent no client wants, which
    drops this client's connection (the next compute then fails with "scheduler-connection-lost").
    """
    keys = {future.key for future in futures}
    for future in futures:
        future.release()
    deadline = time.monotonic() + timeout
    while keys & set(client.who_has()) and time.monotonic() < deadline:   # by key: who_has refuses released futures
        time.sleep(0.02)


def compute(client: Client, collections: list, default: str, show: bool = True, log=print, sent=None) -> list:
    """``client.gather(client.compute(collections))`` with the tasks named by stage; a tuple of
    collections (``da.histogram``'s counts and edges) is computed as a tuple. ``sent()``, if given,
    is called once the graph is with the scheduler (work for this process while the workers compute)."""
    items = [item if isinstance(item, tuple) else (item,) for item in collections]
    lazy = [c for item in items for c in item if is_dask_collection(c)]
    expr = _expr(lazy, finalize=True)
    _, futures = _submit(client, expr, default, show, log, sent)
    values = iter(client.gather(list(flatten(futures))))
    done = [tuple(next(values) if is_dask_collection(c) else c for c in item) for item in items]
    return [d if isinstance(item, tuple) else d[0] for d, item in zip(done, collections)]


class StageBars(MultiProgressBar):
    """One bar per stage of the given futures (and everything they depend on), fed by the scheduler.

    On a terminal: tqdm bars, one per stage, in pipeline order. Elsewhere: one line per stage when
    its last task is done (``[progress] validate  24/24 tasks  3.1 s``).
    """

    def __init__(self, futures: list, client: Client, log=print, file=None):
        super().__init__(futures, scheduler=client.scheduler.address, group_by=key_split, complete=False,
                         interval="200ms")
        self._client_ref, self._log = client, log
        self._file = file or sys.stdout
        self._tty = bool(getattr(self._file, "isatty", lambda: False)())
        self._bars: dict = {}
        self._done: dict[str, float] = {}
        self._started = time.perf_counter()

    def show(self) -> None:
        """Follow the futures until they are all done (or one failed)."""
        self._client_ref.sync(self.listen)
        for bar in self._bars.values():
            bar.close()

    def _draw_bar(self, remaining: dict, all: dict, status: str, **kwargs) -> None:  # noqa: A002 - Dask's name
        for stage in sorted(all, key=lambda s: STAGES.index(s) if s in STAGES else len(STAGES)):
            total, left = all[stage], remaining.get(stage, 0)
            if self._tty:
                self._bar(stage, total).update(total - left - self._bar(stage, total).n)
            elif (left == 0 or status == "finished") and stage not in self._done:
                self._done[stage] = time.perf_counter() - self._started
                self._log(f"[progress] {stage:<18} {total}/{total} tasks  {self._done[stage]:.1f} s")

    def _bar(self, stage: str, total: int):
        if stage not in self._bars:
            from tqdm import tqdm
            self._bars[stage] = tqdm(total=total, desc=f"{stage:<18}", unit="task", file=self._file,
                                     position=len(self._bars), leave=True, dynamic_ncols=True)
        return self._bars[stage]


class LocalBar:
    """A bar for work done in this process (e.g. hashing files): tqdm on a terminal, else one line at
    the end. Use as ``with LocalBar("checksums", n) as bar: ... bar.update()``."""

    def __init__(self, stage: str, total: int, show: bool = True, log=print, file=None):
        self._stage, self._total, self._show, self._log = stage, total, show, log
        self._file = file or sys.stdout
        self._tty = show and bool(getattr(self._file, "isatty", lambda: False)())
        self._bar = None

    def __enter__(self) -> "LocalBar":
        self._started = time.perf_counter()
        if self._tty:
            from tqdm import tqdm
            self._bar = tqdm(total=self._total, desc=f"{self._stage:<18}", unit="file", file=self._file,
                             dynamic_ncols=True)
        return self

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._show and exc[0] is None:
            self._log(f"[progress] {self._stage:<18} {self._total}/{self._total} files  "
                      f"{time.perf_counter() - self._started:.1f} s")

