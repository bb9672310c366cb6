"""What the scheduler hands over: one run of one check instance (:class:`CheckRun`).

Apart from :mod:`monagent.events` (what the alert pipeline makes of runs) so that running checks
(`monagent check`, the scheduler) does not load the event and delivery types (#17: start-up CPU).
"""

from __future__ import annotations

from typing import Tuple

from monagent.api import Result
from monagent.records import record


@record
class CheckRun:
    """One run of one check instance, as the scheduler hands it over."""

    check: str
    check_type: str
    time: float
    duration: float
    results: Tuple[Result, ...]
    error: str = ""


__all__ = ["CheckRun"]
