"""Check runs as the scheduler hands them to the alert pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from monagent.api import Result


@dataclass(frozen=True)
class CheckRun:
    """One finished (or timed-out) run of one check instance.

    A run that raised or timed out carries one ``Result(status=UNKNOWN)`` and ``error``.
    """

    check: str
    check_type: str
    time: float
    duration: float
    results: Tuple[Result, ...]
    error: str = ""
