"""The one line the agent logs once every check has run once after a start.

Without it, "monagent started" is followed by minutes of silence (nothing fires during the
startup grace), and a new user cannot tell a healthy agent from a stuck one. The line says
how many checks ran, how many are OK, and names each one that is not, with its status and
why, judged as ``monagent check`` judges (thresholds without history).
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Mapping, Optional, Tuple

from monagent.api import Status, Threshold, worst
from monagent.checkrun import CheckRun

# The text, in one place for the catalogues.
LINE = "first cycle: {ran} checks ran, {ok} OK{rest}; `monagent check` shows every result"
NOT_OK = "{check} {status}{why}"


def verdict(run: CheckRun, thresholds: Mapping[str, Threshold]) -> Tuple[Status, str]:
    """A run's worst status and the reason for the first result that has it."""
    from monagent.oneshot import judge_all

    if run.error and not run.results:
        return Status.UNKNOWN, run.error
    judged = judge_all(run.results, thresholds)
    if not judged:
        return (Status.UNKNOWN, run.error) if run.error else (Status.OK, "")
    status = worst(j.status for j in judged)
    first = next(j for j in judged if j.status == status)
    why = f"{first.result.subject}: {first.summary}" if first.result.subject and first.summary else first.summary
    return status, why


class FirstCycle:
    """Collects the first run of each expected check; :meth:`observe` returns the line once, when
    the last one has reported (a run that times out reports too, as UNKNOWN)."""

    def __init__(self, expected: Iterable[str], thresholds: Mapping[str, Mapping[str, Threshold]]) -> None:
        self.expected = set(expected)
        self.thresholds = thresholds
        self.seen: Dict[str, Tuple[Status, str]] = {}
        self.done = not self.expected

    def forget(self, names: Iterable[str]) -> None:
        """Checks removed by a reload before they ran."""
        self.expected -= set(names)

    def observe(self, runs: Iterable[CheckRun]) -> Optional[str]:
        if self.done:
            return None
        for run in runs:
            if run.check in self.expected and run.check not in self.seen:
                self.seen[run.check] = verdict(run, self.thresholds.get(run.check, {}))
        if not self.expected <= set(self.seen):
            return None
        self.done = True
        return summary_line(self.seen)


def summary_line(verdicts: Mapping[str, Tuple[Status, str]]) -> str:
    bad = sorted(((n, s, w) for n, (s, w) in verdicts.items() if s != Status.OK), key=lambda t: (-t[1].rank, t[0]))
    parts: List[str] = [NOT_OK.format(check=n, status=s.name, why=f" ({w})" if w else "") for n, s, w in bad]
    ok = len(verdicts) - len(bad)
    return LINE.format(ran=len(verdicts), ok=ok, rest=f"; not OK: {', '.join(parts)}" if parts else "")
