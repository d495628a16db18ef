"""Quality gates: thresholds on a prepared dataset's manifest that stop a run before training."""
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


def check(manifest: dict, gates: GatesConfig, schema: SchemaConfig, where: str) -> None:
    """Raise a one-line ``UserError`` for the first gate the dataset fails."""
    n_in = manifest["records_in"]
    n_q = sum(manifest["quarantined"].values())
    fraction = n_q / n_in if n_in else 0.0
    if fraction > gates.max_quarantined_fraction:
        top = max(manifest["quarantined"], key=manifest["quarantined"].get)
        raise UserError(f"{where}: quality gate failed: {fraction:.1%} of records quarantined ({n_q} of "
                        f"{n_in}, mostly {top}) > gates.max_quarantined_fraction "
                        f"{gates.max_quarantined_fraction:g}; see quarantine.parquet and report.html")
    counts = manifest.get("label_counts", {})
    for name in schema.label_names:
        if counts.get(name, 0) < gates.min_rows_per_class:
            raise UserError(f"{where}: quality gate failed: label {name!r} has {counts.get(name, 0)} rows < "
                            f"gates.min_rows_per_class {gates.min_rows_per_class}; see report.html")
