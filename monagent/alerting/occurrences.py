"""Occurrences (a crash dump, an OOM kill): one event per id and revision, remembered in a seen set.

Pure: :func:`triage` takes a run's occurrences and the check's seen set and says
which to announce, which to fold into a first-run summary, and the seen set's
updates. A check whose seen set is empty (fresh install, lost state) is on its
first run: what it finds is summarised in one notice, except occurrences marked
``announce_on_first_run`` (the crash that caused this boot).
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Sequence, Tuple

from monagent.api import Occurrence, Status, worst
from monagent.formatting import Text
from monagent.records import record

RAN = ""  # the seen-set id that records "this check has run before"


@record
class SeenEntry:
    revision: str
    first_seen: float
    last_seen: float


@record
class Triage:
    announce: Tuple[Tuple[str, Occurrence], ...]
    summarised: Tuple[Tuple[str, Occurrence], ...]
    updates: Mapping[str, SeenEntry]


def triage(found: Sequence[Tuple[str, Occurrence]], seen: Mapping[str, SeenEntry], now: float) -> Triage:
    first_run = RAN not in seen
    announce: List[Tuple[str, Occurrence]] = []
    summarised: List[Tuple[str, Occurrence]] = []
    updates: Dict[str, SeenEntry] = {RAN: SeenEntry("", seen[RAN].first_seen if RAN in seen else now, now)}
    for subject, occurrence in found:
        before = seen.get(occurrence.id)
        updates[occurrence.id] = SeenEntry(occurrence.revision, before.first_seen if before else now, now)
        if before is not None and before.revision == occurrence.revision:
            continue
        if first_run and not occurrence.announce_on_first_run:
            summarised.append((subject, occurrence))
        else:
            announce.append((subject, occurrence))
    return Triage(tuple(announce), tuple(summarised), updates)


FIRST_RUN_DATES = 5


def summary_text(summarised: Sequence[Tuple[str, Occurrence]]) -> Tuple[Text, Status]:
    """What a first run found, in words: ``3 crash dumps already in /var/crash when monagent first
    ran: 2026-01-21, 2025-11-02, 2025-06-30`` (newest first); other occurrences name the newest."""
    ordered = sorted(summarised, key=lambda pair: pair[1].time or 0.0, reverse=True)
    count = len(ordered)
    severity = worst(o.severity for _, o in summarised)
    if all("dump_path" in o.facts for _, o in ordered):  # crash dumps: where and when
        where = ", ".join(sorted({subject for subject, _ in ordered if subject})) or "?"
        dates = tuple(Text("date", {"at": o.time}) for _, o in ordered[:FIRST_RUN_DATES] if o.time)
        if count > FIRST_RUN_DATES:
            dates += (Text("more.short", {"n": count - FIRST_RUN_DATES}),)
        key = "first_run.crash_one" if count == 1 else "first_run.crash"
        return Text(key, {"n": count, "where": where, "dates": dates}), severity
    key = "first_run.other_one" if count == 1 else "first_run.other"
    return Text(key, {"n": count, "newest": ordered[0][1].summary}), severity


def expired(seen: Mapping[str, SeenEntry], now: float, ttl: float) -> Tuple[str, ...]:
    return tuple(ident for ident, entry in seen.items() if now - entry.last_seen > ttl)


def event_id(check: str, occurrence: Occurrence) -> str:
    suffix = f"@{occurrence.revision}" if occurrence.revision else ""
    return f"{check}:{occurrence.id}{suffix}"
