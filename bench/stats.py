"""Percentiles, milliseconds and ratios, each ``None`` when there is nothing to compute it from; and how a figure
prints (``fmt``, ``fx``: "-" for ``None``)."""

from __future__ import annotations

from typing import Any


def pct(values: list[float], q: float) -> float | None:
    """The ``q`` quantile by rank (no interpolation): ``sorted(values)[int(q * n)]``, capped at the last."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def median(values: list[float]) -> float | None:
    """The middle value; the mean of the two middle ones for an even count."""
    if not values:
        return None
    ordered, middle = sorted(values), len(values) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def ms(value: float | None) -> float | None:
    """Seconds to milliseconds, rounded to 0.01 ms."""
    return None if value is None else round(value * 1000, 2)


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b`` rounded to 0.001; ``None`` when either is missing or ``b`` is zero."""
    if a is None or b is None or not b:
        return None
    return round(a / b, 3)


def fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def fx(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.3f}x"
