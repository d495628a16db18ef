"""Raw instances -> model rows, checked against the run's schema: a 4xx names the instance and the rule.

A table instance is a record as the source had it without its label: a list of numbers or one
CSV line; a text instance is a string.

>>> TableRecords(n_values=3, value_min=0, value_max=255).rows([[1, 2, 3], "4,5,6"]).tolist()
[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
>>> TableRecords(n_values=3, value_min=0, value_max=255).rows([[1, 2]])
Traceback (most recent call last):
...
pipeline.serve.records.BadInput: instances[0]: expected 3 numeric fields (the record without its label), got 2
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


class BadInput(ValueError):
    """A request the model cannot take; the message names where and which rule."""


@dataclass(frozen=True)
class TableRecords:
    """Numeric records of ``n_values`` fields (label left out), each in [value_min, value_max]."""

    n_values: int
    value_min: float
    value_max: float
    kind = "table"

    def rows(self, instances: list, where: str = "instances") -> np.ndarray:
        """``instances`` as a float32 array (n, n_values); ``BadInput`` on the first bad one."""
        nonempty(instances, where)
        return np.stack([self.row(inst, f"{where}[{i}]") for i, inst in enumerate(instances)])

    @staticmethod
    def stack(rows: list) -> np.ndarray:
        return np.stack(rows)

    def row(self, instance, where: str) -> np.ndarray:
        """One checked record as float32."""
        values = self._fields(instance, where)
        if len(values) != self.n_values:
            raise BadInput(f"{where}: expected {self.n_values} numeric fields (the record without its label), "
                           f"got {len(values)}")
        try:
            row = np.asarray(values, dtype=np.float64)
        except OverflowError:                                 # an int past float64's range
            row = np.array([v if abs(v) < 1e308 else np.inf for v in values], dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(row) | (row < self.value_min) | (row > self.value_max))
        if bad.size:
            raise BadInput(f"{where}: field {bad[0]} is {values[bad[0]]!r}, outside the schema's range "
                           f"[value_min {self.value_min:g}, value_max {self.value_max:g}]")
        return row.astype(np.float32)

    @staticmethod
    def _fields(instance, where: str) -> list:
        if isinstance(instance, str):
            try:
                return [float(v) for v in instance.split(",")]
            except ValueError:
                raise BadInput(f"{where}: a CSV record must hold numbers only (got {instance[:40]!r})") from None
        if not isinstance(instance, list):
            raise BadInput(f"{where}: expected a list of numbers or a CSV line (got {type(instance).__name__})")
        if not set(map(type, instance)) <= {int, float}:      # the fast check; then find the culprit
            for j, value in enumerate(instance):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise BadInput(f"{where}: field {j} must be a number (got {type(value).__name__} {value!r:.40})")
        return instance

    def input_meta(self) -> dict:
        return {"name": "record", "datatype": "FP32", "shape": [-1, self.n_values]}


@dataclass(frozen=True)
class TextRecords:
    """Raw texts, at most ``max_chars`` characters each."""

    max_chars: int = 100_000
    kind = "text"

    def rows(self, instances: list, where: str = "instances") -> list[str]:
        nonempty(instances, where)
        return [self.row(text, f"{where}[{i}]") for i, text in enumerate(instances)]

    def row(self, text, where: str) -> str:
        if not isinstance(text, str):
            raise BadInput(f"{where}: expected a string (got {type(text).__name__})")
        if not text.strip():
            raise BadInput(f"{where}: the text is empty; send at least one word")
        if len(text) > self.max_chars:
            raise BadInput(f"{where}: the text has {len(text)} characters, more than {self.max_chars}")
        return text

    @staticmethod
    def stack(rows: list) -> list[str]:
        return list(rows)

    def input_meta(self) -> dict:
        return {"name": "text", "datatype": "BYTES", "shape": [-1]}


def nonempty(instances, where: str) -> None:
    if not isinstance(instances, list):
        raise BadInput(f"{where}: expected a list of instances (got {type(instances).__name__})")
    if not instances:
        raise BadInput(f"{where}: no instances; send at least one")


def records_for(transform) -> TableRecords | TextRecords:
    """The checks for a bundle's transform (``models.export.PixelScale`` or ``TextSequence``)."""
    if hasattr(transform, "n_fields"):
        return TableRecords(transform.n_fields - 1, float(transform.value_min), float(transform.value_max))
    return TextRecords()


def v2_instances(inputs, records) -> list:
    """The instances of an Open Inference Protocol v2 request's ``inputs`` (one tensor)."""
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise BadInput("inputs: expected a list of one tensor {name, shape, datatype, data}")
    tensor = inputs[0]
    shape, data = tensor.get("shape"), tensor.get("data")
    if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise BadInput(f"inputs[0].shape: expected a list of non-negative ints (got {shape!r:.60})")
    flat = _flatten(data, "inputs[0].data")
    if math.prod(shape) != len(flat):
        raise BadInput(f"inputs[0]: shape {shape} holds {math.prod(shape)} values but data has {len(flat)}")
    if records.kind == "text":
        if tensor.get("datatype") != "BYTES" or len(shape) != 1:
            raise BadInput(f"inputs[0]: a text model takes datatype BYTES and shape [n] (got "
                           f"{tensor.get('datatype')!r}, {shape})")
        return flat
    if tensor.get("datatype") not in NUMERIC:
        raise BadInput(f"inputs[0].datatype: expected one of {', '.join(NUMERIC)} (got {tensor.get('datatype')!r})")
    if len(shape) < 2 or math.prod(shape[1:]) != records.n_values:
        raise BadInput(f"inputs[0].shape: expected [n, {records.n_values}] (got {shape})")
    width = records.n_values
    return [flat[i * width:(i + 1) * width] for i in range(shape[0])]


NUMERIC = ("FP32", "FP64", "FP16", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")


def _flatten(data, where: str) -> list:
    if not isinstance(data, list):
        raise BadInput(f"{where}: expected a list (got {type(data).__name__})")
    out, stack = [], [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out
