"""Percentiles, milliseconds and ratios, each ``None`` when there is nothing to compute it from."""

from __future__ import annotations


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
