"""The training figures as Prometheus metrics on the scheduler's ``/metrics``.

A collector registered with ``prometheus_client.REGISTRY`` (the registry Dask's ``/metrics``
handler serves) that reads :class:`pipeline.monitor.plugin.MonitorPlugin` at each scrape:

=============================== ======= =========== =============================================
metric                          type    labels      meaning
=============================== ======= =========== =============================================
dcpipe_step_seconds             gauge   run, rank   mean wall time of a training step (last report)
dcpipe_data_wait_seconds        gauge   run, rank   of which waiting for the next batch
dcpipe_exchange_seconds         gauge   run, rank   gradient exchange (compression + allreduce)
dcpipe_bytes_sent_per_step      gauge   run, rank   what the rank sends per step
dcpipe_loss                     gauge   run, rank   training loss (mean since the last report)
dcpipe_val_accuracy             gauge   run, rank   validation accuracy of the last epoch
dcpipe_steps_total              counter run, rank   steps done
dcpipe_bytes_sent_total         counter run, rank   bytes sent (steps x bytes per step)
dcpipe_eta_seconds              gauge   run         training time left (rank 0's pace)
dcpipe_phase                    gauge   run, phase  1 for the run's current phase
=============================== ======= =========== =============================================
"""
from __future__ import annotations

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

RANK_GAUGES = {"step_seconds": ("step_s", "Mean wall time of a training step"),
               "data_wait_seconds": ("wait_s", "Mean time a step waited for its batch"),
               "exchange_seconds": ("exchange_s", "Mean gradient exchange time a step (compression + allreduce)"),
               "bytes_sent_per_step": ("bytes_per_step", "Bytes a rank sends per step"),
               "loss": ("loss", "Training loss, mean since the last report"),
               "val_accuracy": ("val_accuracy", "Validation accuracy of the last finished epoch")}


class TrainingCollector:
    """Yields the dcpipe metrics of every run the plugin holds."""

    def __init__(self, plugin):
        self.plugin = plugin

    def describe(self):
        return []   # metric names are only known at collect time; nothing to check at register

    def collect(self):
        gauges = {name: GaugeMetricFamily(f"dcpipe_{name}", doc, labels=["run", "rank"])
                  for name, (_, doc) in RANK_GAUGES.items()}
        steps = CounterMetricFamily("dcpipe_steps", "Training steps done", labels=["run", "rank"])
        sent = CounterMetricFamily("dcpipe_bytes_sent", "Gradient bytes sent", labels=["run", "rank"])
        eta = GaugeMetricFamily("dcpipe_eta_seconds", "Training time left, from rank 0's pace", labels=["run"])
        phase = GaugeMetricFamily("dcpipe_phase", "1 for the run's current phase", labels=["run", "phase"])
        for run in list(self.plugin.runs.values()):
            for rank, figures in list(run["ranks"].items()):
                labels = [run["run"], str(rank)]
                for name, (key, _) in RANK_GAUGES.items():
                    if figures.get(key) is not None:
                        gauges[name].add_metric(labels, float(figures[key]))
                if "step" in figures:
                    steps.add_metric(labels, float(figures["step"]))
                    sent.add_metric(labels, float(figures["step"]) * float(figures.get("bytes_per_step") or 0))
            if run["eta_seconds"] is not None:
                eta.add_metric([run["run"]], float(run["eta_seconds"]))
            phase.add_metric([run["run"], run["phase"]], 1.0)
        yield from (*gauges.values(), steps, sent, eta, phase)


def register(plugin) -> TrainingCollector:
    collector = TrainingCollector(plugin)
    REGISTRY.register(collector)
    return collector


def unregister(collector: TrainingCollector | None) -> None:
    if collector is not None:
        try:
            REGISTRY.unregister(collector)
        except KeyError:
            pass
