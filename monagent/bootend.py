"""How the previous boot ended: planned, a crash with a dump, a crash with a pstore record, or an
unplanned reboot with no record. Pure: the evidence in, one verdict out.

The agent gathers the evidence at its first start in a new boot (``monagent.bootinquiry``): the
crash dumps its kdump checks found, the pstore records not seen before, the previous boot's journal
and what the agent itself stored in that boot. :func:`classify` weighs them, strongest first:

1. a crash dump written after the previous boot began: the kdump watcher's crash card is the
   message (no separate reboot message);
2. a pstore record of a panic (or of an oops when the boot did not shut down in order);
3. the journal shows an orderly shutdown (logind's announcement, PID 1 reaching a shutdown target):
   planned; without a readable journal, the agent's own clean stop stands in, said as such;
4. else unplanned: the last kernel lines, the uptime, when it was last seen alive, and hints.

Every user-visible text of this feature is built here, in one place: the verdict's ``reason`` is a
catalogue text (``bootend.*``, zh and en) with typed arguments, so each receiver reads it in its
language; ``summary`` is the same in English, for the log and ``monagent check``'s older stores.
"""

from __future__ import annotations

import enum
from dataclasses import field
from typing import TYPE_CHECKING, Dict, Mapping, Optional, Sequence, Tuple

from monagent.api import Fact, Occurrence, Status
from monagent.formatting import Formatter, Text, Words, joined
from monagent.records import record

if TYPE_CHECKING:
    from monagent.checks.journal_read import PreviousBoot
    from monagent.checks.pstore import PstoreRecord

SUMMARY_MAX = 300
_ENGLISH = Formatter("en")
_KINDS = ("reboot", "power-off", "halt", "kexec")  # shutdown kinds with a text of their own


class BootEnd(str, enum.Enum):
    PLANNED = "planned"
    CRASH_DUMP = "crash_dump"
    CRASH_PSTORE = "crash_pstore"
    UNPLANNED = "unplanned"


@record
class AgentMemory:
    """What the agent stored in the previous boot (the store's meta)."""

    boot_id: str
    last_seen: Optional[float]  # its last evaluation
    started_at: Optional[float]  # its last start in that boot
    clean_stop: bool  # it was stopped by SIGTERM (as a shutdown does), not killed


@record
class Evidence:
    memory: AgentMemory
    boot_time: float  # this boot's start (wall clock)
    dumps: Tuple[Tuple[str, Occurrence], ...] = ()  # (check, occurrence) of the previous boot's crash
    pstore: Tuple[PstoreRecord, ...] = ()  # records not seen before
    journal: Optional[PreviousBoot] = None  # None: not read (disabled)
    problems: Tuple[str, ...] = ()  # sources that could not be read
    kernel_lines: int = 10


@record
class Verdict:
    end: BootEnd
    severity: Status
    reason: Text
    facts: Mapping[str, Fact] = field(default_factory=dict)
    details: str = ""
    since: Optional[float] = None  # last seen alive

    @property
    def summary(self) -> str:
        """The reason in English (the log line)."""
        return _short(_ENGLISH.text(self.reason))

    def as_meta(self) -> Dict[str, object]:
        return {
            "end": self.end.value,
            "severity": self.severity.name,
            "summary": self.summary,
            "reason": self.reason.to_json(),
            **dict(self.facts),
        }


def classify(evidence: Evidence, *, unplanned_severity: Status = Status.CRITICAL) -> Verdict:
    journal = evidence.journal
    last_seen = _last_seen(evidence)
    base = _base_facts(evidence, last_seen)
    if evidence.dumps:
        check, occurrence = max(evidence.dumps, key=lambda pair: pair[1].time or 0.0)
        facts = {**base, "evidence": f"crash dump reported by check {check}", "reason": occurrence.facts.get("reason", "")}
        what: Words = occurrence.reason or occurrence.summary
        reason = Text("bootend.crash_dump", {"what": what})
        return Verdict(BootEnd.CRASH_DUMP, occurrence.severity, reason, _clean(facts), since=last_seen)
    shutdown = journal.shutdown if journal is not None and journal.available else None
    crashes = [r for r in evidence.pstore if r.reason.lower() == "panic" or (r.panic and shutdown is None)]
    if crashes:
        return _pstore_verdict(max(crashes, key=lambda r: r.mtime), base, last_seen)
    if shutdown is not None:
        kind: Words = Text(f"bootend.kind.{shutdown.kind}") if shutdown.kind in _KINDS else shutdown.kind
        if shutdown.requested_by:
            reason = Text("bootend.planned_by", {"kind": kind, "who": shutdown.requested_by})
        else:
            reason = Text("bootend.planned", {"kind": kind})
        facts = {**base, "shutdown": shutdown.kind, "evidence": shutdown.evidence, "requested_by": shutdown.requested_by}
        return Verdict(BootEnd.PLANNED, Status.WARNING, reason, _clean(facts), since=last_seen)
    if (journal is None or not journal.available) and evidence.memory.clean_stop:
        facts = {**base, "evidence": "monagent was stopped cleanly before the reboot (no journal to confirm a shutdown)"}
        return Verdict(BootEnd.PLANNED, Status.WARNING, Text("bootend.planned_probably"), _clean(facts), since=last_seen)
    return _unplanned(evidence, base, last_seen, unplanned_severity)


def _pstore_verdict(record: PstoreRecord, base: Mapping[str, Fact], last_seen: Optional[float]) -> Verdict:
    rep = record.report
    what: Words = _short(rep.headline) if rep.headline else Text("bootend.pstore_unrecognised", {"kind": record.reason})
    facts = {
        **base,
        "evidence": f"pstore record ({record.backend}): {', '.join(record.paths[:4])}",
        "reason": rep.headline,
        "panic": rep.panic if rep.panic and rep.panic not in rep.headline else "",
        "function": rep.function,
        "module": rep.module,
        "comm": rep.comm,
        "pid": rep.pid,
        "kernel": rep.kernel,
        "taint": rep.taint,
        "hardware": rep.hardware,
        "test_crash": rep.test_crash,
        "note": record.note,
    }
    reason = Text("bootend.pstore", {"backend": record.backend, "what": what})
    return Verdict(BootEnd.CRASH_PSTORE, Status.CRITICAL, reason, _clean(facts), "\n".join(rep.excerpt), since=last_seen)


def _unplanned(evidence: Evidence, base: Mapping[str, Fact], last_seen: Optional[float], severity: Status) -> Verdict:
    journal = evidence.journal
    facts = dict(base)
    details = ""
    hints: Sequence[Text] = ()
    if journal is not None and journal.available:
        from monagent.checks.kernel_patterns import find_problems

        texts = [line.text for line in journal.kernel_lines]
        hints = [p.reason for p in find_problems(texts)]
        tail = journal.kernel_lines[-evidence.kernel_lines :] if evidence.kernel_lines else ()
        details = "\n".join(f"[{_clock(line.time)}] {line.text}" for line in tail)
        facts["evidence"] = "the previous boot's journal ends without a shutdown"
    elif journal is not None:
        facts["journal"] = f"no journal of the previous boot: {journal.error}; only kdump and pstore were consulted"
        facts["evidence"] = "no crash dump, no pstore record, no journal"
    if hints:
        facts["hints"] = "; ".join(_ENGLISH.text(h) for h in hints)
        reason = Text("bootend.unplanned_hints", {"hints": joined(*hints)})
    elif journal is not None and not journal.available:
        reason = Text("bootend.unplanned_no_journal")
    else:
        reason = Text("bootend.unplanned")
    return Verdict(BootEnd.UNPLANNED, severity, reason, _clean(facts), details, since=last_seen)


def _last_seen(evidence: Evidence) -> Optional[float]:
    journal = evidence.journal
    times = [evidence.memory.last_seen] + ([journal.last_time] if journal is not None and journal.available else [])
    known = [t for t in times if t]
    return max(known) if known else None


def _base_facts(evidence: Evidence, last_seen: Optional[float]) -> Dict[str, Fact]:
    """Times as epoch seconds and spans in seconds: each output shows them in its language and zone."""
    journal = evidence.journal
    uptime = journal.uptime if journal is not None and journal.available else None
    facts: Dict[str, Fact] = {
        "previous_boot": evidence.memory.boot_id,
        "last_seen_alive": last_seen or "",
        "uptime": round(uptime) if uptime else "",
        "down_for": round(evidence.boot_time - last_seen) if last_seen is not None and evidence.boot_time > last_seen else "",
        "unreadable": "; ".join(evidence.problems),
    }
    return facts


def _clean(facts: Mapping[str, Fact]) -> Dict[str, Fact]:
    return {k: v for k, v in facts.items() if v}


def _short(text: str) -> str:
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1] + "…"


def _clock(wall: Optional[float]) -> str:
    from monagent.wording import ENGLISH

    return ENGLISH.time(wall) if wall else "?"


def describe(meta: Mapping[str, object], fmt: Formatter = _ENGLISH) -> str:
    """The stored verdict as one line for ``monagent check``, in ``fmt``'s language; a verdict stored
    by an older monagent (an English summary, a time as text) as it was written."""
    raw = meta.get("reason")
    said = fmt.text(Text.from_json(raw)) if isinstance(raw, dict) else str(meta.get("summary", ""))
    seen = meta.get("last_seen_alive", "")
    if isinstance(seen, (int, float)) and not isinstance(seen, bool):
        return fmt.say("bootend.line", summary=said, seen=float(seen))
    return f"{said} (last seen alive {seen})" if seen and seen != "unknown" else said
