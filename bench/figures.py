"""Figures (a median of runs, with min-max) and the sections that group them by benchmark."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


class BenchError(RuntimeError):
    """A benchmark could not produce trustworthy figures (e.g. a side stored the wrong users)."""


@dataclass
class Figure:
    """One measured quantity: every run's value, summarised as median and min-max."""

    key: str  # section-unique, e.g. "rest.users_per_s"
    label: str
    unit: str
    values: list[float]
    digits: int = 1  # decimals shown in the table
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "unit": self.unit,
            "median": self.median,
            "min": self.low,
            "max": self.high,
            "n": len(self.values),
            "runs": self.values,
            **({"note": self.note} if self.note else {}),
        }


@dataclass(frozen=True)
class Row:
    """A figure in a benchmark's table: its key and label (``str.format`` templates over the
    section's parameters), unit, digits, and its values from the measurements (None: not
    measured this time, no figure)."""

    key: str
    label: str
    unit: str
    values: Callable[[Any], list[float] | float | None]
    digits: int = 1


@dataclass
class Section:
    """The figures of one benchmark, its parameters, notes and (when it could not run) why."""

    name: str
    title: str
    params: dict[str, Any] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None
    error: str | None = None
    seconds: float = 0.0

    def add(
        self,
        key: str,
        label: str,
        unit: str,
        values: list[float] | float,
        *,
        digits: int = 1,
        note: str = "",
    ) -> Figure:
        if not isinstance(values, list):
            values = [values]
        if not values:
            raise BenchError(f"{self.name}.{key}: no values")
        figure = Figure(key, label, unit, [float(v) for v in values], digits, note)
        self.figures = [f for f in self.figures if f.key != key] + [figure]
        return figure

    def add_rows(self, rows: Iterable[Row], measured: Any, **params: Any) -> None:
        """A figure per row, in the rows' order, from ``measured``."""
        for row in rows:
            values = row.values(measured)
            if values is not None:
                key, label = row.key.format(**params), row.label.format(**params)
                self.add(key, label, row.unit, values, digits=row.digits)

    def figure(self, key: str) -> Figure | None:
        return next((f for f in self.figures if f.key == key), None)

    def to_json(self) -> dict[str, Any]:
        status = "error" if self.error else "skipped" if self.skipped else "ok"
        return {
            "title": self.title,
            "status": status,
            **({"skipped": self.skipped} if self.skipped else {}),
            **({"error": self.error} if self.error else {}),
            "seconds": round(self.seconds, 2),
            "params": self.params,
            "figures": {f.key: f.to_json() for f in self.figures},
            "notes": self.notes,
            "details": self.details,
        }


def paired_ratios(numerators: list[float], denominators: list[float]) -> list[float]:
    """Run-by-run ratios of two sides measured in the same iteration."""
    return [a / b for a, b in zip(numerators, denominators, strict=True) if b]
