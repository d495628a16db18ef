"""Quality gates: thresholds on a prepared dataset's manifest that stop a run before training.

:func:`verdict` is recorded in the manifest as ``quality`` when a version is published, with the
gates config in force then. A rejected version is still published (its quarantine and report can
be inspected) but ``latest`` skips it and ``store.check_ready`` refuses it. The gates are not part
of the version id, so the recorded verdict is the one at publish time.
"""
from __future__ import annotations

from pipeline.config import GatesConfig, SchemaConfig
from pipeline.errors import UserError


def reconcile(manifest: dict, where: str) -> None:
    """``records_in == records_out + sum(quarantined) + duplicates_dropped``, or an error."""
    n_in, n_out = manifest["records_in"], manifest["records_out"]
    n_q, n_dup = sum(manifest["quarantined"].values()), manifest["duplicates_dropped"]
    if n_in != n_out + n_q + n_dup:
        raise UserError(f"{where}: records do not reconcile: {n_in} in != {n_out} out + {n_q} quarantined "
                        f"+ {n_dup} duplicates; this is a dcpipe bug, please report it")


def _failure(manifest: dict, gates: GatesConfig, schema: SchemaConfig, where: str) -> tuple[str, str] | None:
    """(gate, message) of the first gate the dataset fails, or None."""
    n_in = manifest["records_in"]
    n_q = sum(manifest["quarantined"].values())
    fraction = n_q / n_in if n_in else 0.0
    if fraction > gates.max_quarantined_fraction:
        top = max(manifest["quarantined"], key=manifest["quarantined"].get)
        return "max_quarantined_fraction", (
            f"{where}: quality gate failed: {fraction:.1%} of records quarantined ({n_q} of {n_in}, mostly {top}) "
            f"> gates.max_quarantined_fraction {gates.max_quarantined_fraction:g}; see quarantine.parquet and "
            "report.html")
    counts = manifest.get("label_counts", {})
    for name in schema.label_names if manifest.get("labelled", True) else ():
        if counts.get(name, 0) < gates.min_rows_per_class:
            return "min_rows_per_class", (
                f"{where}: quality gate failed: label {name!r} has {counts.get(name, 0)} rows < "
                f"gates.min_rows_per_class {gates.min_rows_per_class}; see report.html")
    return None


def verdict(manifest: dict, gates: GatesConfig, schema: SchemaConfig, where: str) -> dict:
    """The manifest's ``quality`` record: ``{"passed", "gate", "message", "gates"}``."""
    failed = _failure(manifest, gates, schema, where)
    gate, message = failed if failed else (None, None)
    return {"passed": failed is None, "gate": gate, "message": message, "gates": gates.model_dump()}


def check(manifest: dict, gates: GatesConfig, schema: SchemaConfig, where: str) -> None:
    """Raise a one-line ``UserError`` for the first gate the dataset fails."""
    failed = _failure(manifest, gates, schema, where)
    if failed:
        raise UserError(failed[1])


def check_recorded(manifest: dict) -> None:
    """Raise the recorded gate message when the version was rejected at publish time."""
    quality = manifest.get("quality") or {}
    if quality.get("passed") is False:
        raise UserError(f"{quality['message']} (recorded when the version was published: gates are not part "
                        "of the version id, so a looser gates config does not admit it)")
