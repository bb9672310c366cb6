"""Flap detection with the Nagios algorithm on the latched level (docs/design/alerting.md d.5)."""

from __future__ import annotations

from typing import Tuple

HISTORY = 21


def push(history: Tuple[int, ...], level: int) -> Tuple[int, ...]:
    """Append ``level``; on first use the ring is filled with it, so nothing flaps at start."""
    if not history:
        return (level,) * HISTORY
    return (*history[1:], level)


def percent_state_change(history: Tuple[int, ...]) -> float:
    """100 x the weighted count of changes between neighbours (weights 0.75 oldest .. 1.25 newest) / 20."""
    total = 0.0
    for i in range(1, len(history)):
        if history[i] != history[i - 1]:
            total += 0.75 + (i - 1) * 0.5 / 19
    return 100.0 * total / 20


def update(flapping: bool, history: Tuple[int, ...], low: float, high: float) -> bool:
    """Start at >= ``high``, stop at <= ``low``, unchanged in between."""
    percent = percent_state_change(history)
    if not flapping and percent >= high:
        return True
    if flapping and percent <= low:
        return False
    return flapping
