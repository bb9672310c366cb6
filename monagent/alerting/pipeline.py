"""The alert pipeline: check runs in, committed states and outbox entries out.

The agent calls :meth:`AlertPipeline.observe` with each cycle's finished runs and
:meth:`AlertPipeline.tick` on every loop; both evaluate in memory (the pure
machine and policy), then commit the new states, what each receiver heard and the
new outbox entries in one transaction before any delivery is attempted. When the
store cannot be written, the changes stay in memory and go in with the next
commit that works. A key whose sample changed only its last value is not written
every cycle (persist.py says what is written when). The control socket's requests (silence, ack) run here too,
under the same lock as the scheduler thread's calls.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from monagent.alerting import persist
from monagent.alerting.config import AlertingOverrides
from monagent.alerting.machine import AlertState, Change, Phase, Transition, evolve, incident_prefix, level_of, step, unknown
from monagent.alerting.matchers import find_key
from monagent.alerting.messages import alert_event, notice_event
from monagent.alerting.occurrences import SeenEntry, event_id, expired, summary_text, triage
from monagent.alerting.policy import (
    Heard,
    notice_recipients,
    reconcile,
    reminder_at,
    reminder_due,
    reminder_recipients,
)
from monagent.alerting.samples import STATUS_METRIC, UNKNOWN_METRIC, Sample, Translation, translate
from monagent.alerting.silence_ack import BadRequest, Decision, NotFound, decide, refusal
from monagent.alerting.suppress import Ack, Silence, Suppressions
from monagent.api import Occurrence, Status
from monagent.bootend import AgentMemory, BootEnd, Verdict
from monagent.checkrun import CheckRun
from monagent.events import AGENT_CHECK, HOST_METRIC, AlertKey, Event, EventKind
from monagent.formatting import Text
from monagent.lazylog import get_logger
from monagent.store import StoreBroken, StoreUnavailable
from monagent.wording import ENGLISH

if TYPE_CHECKING:
    from monagent.checks.pstore import PstoreRecord
    from monagent.config import Config
    from monagent.store import Store, StoredState

log = get_logger(__name__)

CONSOLE = "console"  # the receiver that needs no durable outbox
OCCURRENCE_METRIC = "occurrence"
PSTORE_SEEN = "monagent:pstore"  # the seen set of pstore records (by content digest)
PRUNE_EVERY = 3600.0
RECHECK = 5.0  # seconds between looks at a reminder that is due but held (muted), and at a refused commit
TREND_LENGTH = 10


def severity_label(state: AlertState) -> str:
    """What a ``severity`` matcher sees: the incident's severity while open, else the latched level."""
    return (state.severity if state.phase.open else state.latched).label


class AlertPipeline:
    def __init__(self, config: Config, store: Store, *, now: float, monotonic: float, boot_id: str) -> None:
        self._lock = threading.RLock()
        self.store = store
        self.delivery_stopped = ""  # set while commits fail for a reason other than disk space (a bug)
        self._unwritable = False  # the store refuses writes: events go to the console from memory
        self.states: Dict[AlertKey, AlertState] = {}
        self.heard: Dict[AlertKey, Dict[str, Heard]] = {}
        self.silences: Dict[str, Silence] = {}
        self.acks: Dict[AlertKey, Ack] = {}
        self.seen: Dict[str, Dict[str, SeenEntry]] = {}
        self._dirty = persist.Dirty()
        self._ledger = persist.Ledger(flushed_at=monotonic, offset=now - monotonic)
        self._eval_at: Optional[float] = None  # the last evaluation not yet in meta.last_eval_at
        self._eval_written = False  # the first evaluation after start is always written
        self._now, self._mono = now, monotonic
        self._last_prune = monotonic
        self._remind_at: Optional[float] = None  # when the next reminder may fall due (None: look at every key)
        self._digests: Dict[AlertKey, str] = {}  # incident_prefix of each key seen
        self._apply_config(config)
        stored = store.load()
        self._restore(stored, now, monotonic)
        self._started = monotonic
        self.boot_change: Optional[AgentMemory] = None  # set at the first start in a new boot
        self._startup_notices(stored.meta, boot_id, now)
        self._retire_unconfigured(now, monotonic)
        self._dirty.meta.update(boot_id=boot_id, clean_shutdown="0", last_eval_at=repr(now), started_at=repr(now))
        self._commit(now)

    # ------------------------------------------------------------ configuration and restore
    def _audit(self, message: str, *args: Any) -> None:
        """Every transition goes to the log once, at INFO: the journal is the audit trail even when no
        receiver is reachable. With the console receiver on, its line is that record, so the log
        line drops to DEBUG instead of printing each alert twice."""
        if self.config.notifiers.console.enabled:
            log.debug(message, *args)
        else:
            log.info(message, *args)

    def _apply_config(self, config: Config) -> None:
        from monagent.store import Bounds

        self.config = config
        self.host = config.agent.hostname
        self.recipients = config.notifiers.recipients()
        self.store.bounds = Bounds(config.alerting.outbox_max_entries, config.alerting.outbox_max_age)

    def _in_grace(self, check: str, mono: float) -> bool:
        """Startup grace (d.8): ``startup_grace``, or max(2 x the check's interval, 60 s)."""
        grace = self.config.alerting.startup_grace
        if grace is None:
            instance = self.config.check(check)
            grace = max(2 * instance.interval if instance is not None else 0.0, 60.0)
        return mono < self._started + grace

    def _prefix(self, key: AlertKey) -> str:
        """Incident ids: the key's hash and the time (hex seconds), unique even after a pruned key fires again."""
        digest = self._digests.get(key)
        if digest is None:
            digest = self._digests[key] = incident_prefix(key)  # a SHA-1 per sample was 5% of observe
        return f"{digest}-{int(self._now):x}"

    def _params(self, key: AlertKey) -> AlertingOverrides:
        check = self.config.check(key.check)
        return check.alerting if check is not None else self.config.alerting.defaults

    def _restore(self, stored: StoredState, now: float, mono: float) -> None:
        restored = persist.restore(stored, now, mono, self.config.alerting.outage_tolerance)
        self.states, self.heard, self.silences = restored.states, restored.heard, restored.silences
        self.acks, self.seen = restored.acks, restored.seen
        if stored.alerts:
            log.info(
                "restored %d alert states (%d firing) after a gap of %.0f s", len(self.states), self.firing_count(), restored.gap
            )

    def _startup_notices(self, meta: Mapping[str, str], boot_id: str, now: float) -> None:
        last = float(meta["last_eval_at"]) if "last_eval_at" in meta else None
        if self.store.was_reset:
            reset = Text("notice.state_reset", {"path": str(self.store.moved_to)})
            self._notice(f"state-reset:{int(now)}", "state", reset, now)
        previous = meta.get("boot_id")
        if previous and boot_id and previous != boot_id:
            self.boot_change = AgentMemory(
                previous,
                last,
                float(meta["started_at"]) if "started_at" in meta else None,
                meta.get("clean_shutdown") == "1",
            )
            if not self.config.reboot.enabled:
                said = Text("notice.rebooted", {"last": last}) if last is not None else Text("notice.rebooted_unknown")
                self._notice(f"host-rebooted:{boot_id}", "host", said, now, since=last)
        elif meta.get("clean_shutdown") == "0":
            said = Text("notice.unclean", {"last": last}) if last is not None else Text("notice.unclean_unknown")
            self._notice(f"agent-restarted:{int(now)}", "agent", said, now, since=last)

    # ------------------------------------------------------------ the previous boot's end
    def new_dumps(self, runs: Sequence[CheckRun], boot_time: float) -> List[Tuple[str, Occurrence]]:
        """Crash dumps in ``runs`` not announced before, written after the previous boot began
        (after the agent's last start in it) and before this boot: the crash that ended it."""
        memory = self.boot_change
        after = memory.started_at if memory is not None and memory.started_at is not None else boot_time - 86400.0
        found = []
        for run in runs:
            seen = self.seen.get(run.check, {})
            for result in run.results:
                for occurrence in result.occurrences:
                    written = occurrence.time or 0.0
                    if occurrence.id not in seen and after <= written <= boot_time + 600.0:
                        found.append((run.check, occurrence))
        return found

    def new_pstore(self, records: Sequence[PstoreRecord], now: float) -> List[PstoreRecord]:
        """Records not seen at an earlier start; every record found is remembered (never deleted)."""
        with self._lock:
            seen = self.seen.setdefault(PSTORE_SEEN, {})
            fresh = [r for r in records if r.ident not in seen]
            for record in records:
                before = seen.get(record.ident)
                seen[record.ident] = SeenEntry("", before.first_seen if before else now, now)
                self._dirty.seen.add((PSTORE_SEEN, record.ident))
            return fresh

    def explain_boot(self, verdict: Verdict, boot_id: str, now: float) -> int:
        """One message for the previous boot's end (none when a crash card already says it, or when
        planned reboots are configured silent); the verdict is kept for ``monagent check``."""
        with self._lock:
            self._now = now
            self._dirty.meta["last_boot_end"] = json.dumps(verdict.as_meta(), sort_keys=True)
            log.warning("previous boot: %s", verdict.summary)
            silent = verdict.end == BootEnd.PLANNED and self.config.reboot.planned == "silent"
            if verdict.end != BootEnd.CRASH_DUMP and not silent:
                key = AlertKey(AGENT_CHECK, "", HOST_METRIC)
                level = verdict.severity.label
                if not self._suppressions(now).muted(key, "", now, level):
                    event = notice_event(
                        f"boot-end:{boot_id}",
                        key,
                        verdict.summary,
                        now=now,
                        host=self.host,
                        severity=verdict.severity,
                        since=verdict.since,
                        details=verdict.details,
                        reason=verdict.reason,
                    )
                    event = replace(event, facts=dict(verdict.facts), check_type=verdict.end.value)
                    self._enqueue(notice_recipients(AGENT_CHECK, verdict.severity, self.recipients, {}), event)
            return self._commit(now)

    def _notice(self, ident: str, what: str, reason: Text, now: float, since: Optional[float] = None) -> None:
        key = AlertKey(AGENT_CHECK, "", what)
        summary = ENGLISH.text(reason)
        log.warning("%s", summary)
        if self._suppressions(now).muted(key, "", now, "warning"):
            return
        event = notice_event(ident, key, summary, now=now, host=self.host, since=since, reason=reason)
        self._enqueue(notice_recipients(AGENT_CHECK, Status.WARNING, self.recipients, {}), event)

    # ------------------------------------------------------------ the agent's calls
    def observe(self, runs: Sequence[CheckRun], now: float, monotonic: float) -> int:
        """Evaluate ``runs``, then commit; returns how many outbox entries this call committed."""
        with self._lock:
            self._now, self._mono = now, monotonic
            touched: Dict[AlertKey, Tuple[Transition, ...]] = {}
            for run in runs:
                self._observe_run(run, now, monotonic, touched)
            self._notify(touched, now, monotonic)
            self._remind_at = None  # the samples may have fired, resolved or re-timed a reminder
            self._eval_at = now  # written with the next commit that writes anything, or the periodic one
            return self._commit(now)

    def tick(self, now: float, monotonic: float) -> int:
        """Timers: reminders, expiring acks, retention; retries a commit the store refused. Between the
        times :meth:`next_timer` gives it finds nothing to do, and costs next to nothing."""
        with self._lock:
            self._now, self._mono = now, monotonic
            if self._remind_at is None or monotonic >= self._remind_at:
                self._remind(now, monotonic)
            if self.acks:
                self._expire_acks(now)
            if monotonic - self._last_prune >= PRUNE_EVERY:
                self._last_prune = monotonic
                self._prune(now, monotonic)
            if not (self._dirty.keys or self._dirty.outbox or self._dirty.acks or self._dirty.seen or self._dirty.silences):
                return 0
            return self._commit(now)

    def next_timer(self, now: float, monotonic: float) -> float:
        """The monotonic time by which :meth:`tick` has work: a reminder, an ack's expiry, retention, or
        a commit the store refused; the agent's loop sleeps until then when no check is due sooner."""
        with self._lock:
            times = [self._last_prune + PRUNE_EVERY, monotonic if self._remind_at is None else self._remind_at]
            times += [monotonic + (a.expires_at - now) for a in self.acks.values() if a.expires_at is not None]
            if self._dirty.keys or self._dirty.outbox or self._dirty.acks or self._dirty.seen or self._dirty.silences:
                times.append(monotonic + RECHECK)
            return min(times)

    def reload(self, config: Config) -> None:
        """Keeps keys and incidents; retires the keys of removed checks and removed thresholds."""
        with self._lock:
            self._remind_at = None
            self._apply_config(config)
            self._retire_unconfigured(self._now, self._mono)
            self._commit(self._now)

    def _retire_unconfigured(self, now: float, mono: float) -> None:
        """Keys of checks no longer configured, and of metrics that lost their threshold."""
        for key in list(self.states):
            check = self.config.check(key.check)
            if check is None:
                self._retire(key, "check removed", now, mono)
            elif key.metric not in (STATUS_METRIC, UNKNOWN_METRIC) and key.metric not in check.thresholds:
                self._retire(key, "threshold removed", now, mono)

    def close(self, clean: bool) -> None:
        with self._lock:
            self._dirty.meta.update(clean_shutdown="1" if clean else "0", last_eval_at=repr(self._now))
            self._commit(self._now, flush=True)

    def open_alerts(self) -> List[Tuple[AlertKey, AlertState]]:
        """Every key that is not inactive, with its state (for the metrics endpoint)."""
        with self._lock:
            return [(key, state) for key, state in self.states.items() if state.phase != Phase.INACTIVE]

    def health(self) -> Dict[str, str]:
        """For the control socket's ping and ``monagent status``: what stops delivery, if anything."""
        return {"problem": self.delivery_stopped} if self.delivery_stopped else {}

    def firing_count(self) -> int:
        with self._lock:
            return sum(1 for s in self.states.values() if s.phase.open)

    # ------------------------------------------------------------ evaluation
    def _observe_run(self, run: CheckRun, now: float, mono: float, touched: Dict[AlertKey, Tuple[Transition, ...]]) -> None:
        check = self.config.check(run.check)
        if check is None:
            return  # removed by a reload while it ran
        result = translate(run, check.thresholds)
        if result.failed:
            for key in [k for k in self.states if k.check == run.check and k.metric != UNKNOWN_METRIC]:
                self.states[key] = unknown(self.states[key])
                self._dirty.keys.add(key)
        else:
            for sample in result.samples:
                self._apply_sample(sample, check.alerting, mono, touched)
            self._retire_gone(run.check, result, now, mono)
            self._occurrences(run, result.occurrences, now)
        self._companions(run, result, check.alerting, mono, touched)

    def _apply_sample(
        self, sample: Sample, params: AlertingOverrides, mono: float, touched: Dict[AlertKey, Tuple[Transition, ...]]
    ) -> None:
        key = sample.key
        if sample.unknown and key not in self.states:
            return  # nothing known to keep; the check's "#unknown" companion records the failure
        state = self.states.get(key) or AlertState()
        self._dirty.keys.add(key)
        if sample.unknown:
            self.states[key] = unknown(evolve(state, check_type=sample.check_type))
            return
        trend = (*state.trend, sample.value)[-TREND_LENGTH:] if sample.value is not None else state.trend
        state = evolve(
            state,
            check_type=sample.check_type,
            value=sample.value,
            threshold=sample.threshold,
            unit=sample.unit,
            reason=sample.reason,
            facts=dict(sample.facts),
            details=sample.details,
            discovered=sample.discovered,
            trend=trend,
        )
        level = level_of(state, sample.value, sample.threshold, sample.verdict)
        state, changes = step(state, level, mono, params, prefix=self._prefix(key), hold_fire=self._in_grace(key.check, mono))
        self.states[key] = state
        touched[key] = touched.get(key, ()) + changes

    def _companions(
        self,
        run: CheckRun,
        result: Translation,
        params: AlertingOverrides,
        mono: float,
        touched: Dict[AlertKey, Tuple[Transition, ...]],
    ) -> None:
        """The ``#unknown`` key of a check (or subject) that could not judge N runs in a row (d.3)."""
        known = [k for k in self.states if k.metric == UNKNOWN_METRIC and k.check == run.check]
        if not result.unknown_subjects and not known:
            return  # the common case: judged, and nothing unknown to clear
        quick = replace(
            params,
            fire_after_cycles=1,
            fire_after=0.0,
            fire_window=None,
            clear_after_cycles=1,
            keep_firing_for=0.0,
            flap_enabled=False,
            repeat_critical=0.0,
        )
        for subject, reason in result.unknown_subjects.items():
            key = AlertKey(run.check, subject, UNKNOWN_METRIC)
            state = self.states.get(key) or AlertState()
            streak = state.unknown_streak + 1
            state = evolve(state, check_type=run.check_type, reason=reason, unknown_streak=streak, value=None, threshold=None)
            if streak >= params.unknown_after_cycles:
                state, changes = step(state, Status.WARNING, mono, quick, prefix=self._prefix(key))
                state = evolve(state, unknown_streak=streak)
                touched[key] = touched.get(key, ()) + changes
            self.states[key] = state
            self._dirty.keys.add(key)
        for key in known:
            if key.subject in result.unknown_subjects:
                continue
            state, changes = step(self.states[key], Status.OK, mono, quick, prefix=self._prefix(key))
            self.states[key] = evolve(state, unknown_streak=0)
            self._dirty.keys.add(key)
            touched[key] = touched.get(key, ()) + changes

    def _retire_gone(self, check: str, result: Translation, now: float, mono: float) -> None:
        for key, state in list(self.states.items()):
            if key.check == check and state.discovered and key.subject not in result.reported:
                self._retire(key, "no longer present", now, mono)

    def _retire(self, key: AlertKey, note: str, now: float, mono: float) -> None:
        state = self.states.pop(key, None)
        heard = self.heard.pop(key, {})
        self._dirty.keys.add(key)
        if self.acks.pop(key, None) is not None:
            self._dirty.acks.add(key)
        told = {r: h for r, h in heard.items() if h.firing()}
        if state is None or not told:
            return
        muted = self._suppressions(now).muted(key, state.check_type, now, severity_label(state))
        if muted:
            log.info("%s retired (%s) while muted (%s): no resolve sent", key, note, muted)
            return
        first = next(iter(told.values()))
        event = alert_event(
            EventKind.RESOLVED,
            key,
            state,
            incident=first.incident,
            event_id=f"{first.incident}:{state.seq + 1}",
            severity=first.severity,
            now=now,
            mono=mono,
            host=self.host,
            note=note,
        )
        self._audit("RESOLVED %s (%s)", key, note)
        self._enqueue(tuple(told), event)

    def _occurrences(self, run: CheckRun, found: Sequence[Tuple[str, Occurrence]], now: float) -> None:
        check = run.check
        seen = self.seen.setdefault(check, {})
        verdict = triage(found, seen, now)
        for ident, entry in verdict.updates.items():
            before = seen.get(ident)
            seen[ident] = entry
            if before is None or (before.revision, before.first_seen) != (entry.revision, entry.first_seen):
                self._dirty.seen.add((check, ident))
            else:  # seen again: only last_seen moved, written with the periodic flush (persist.py)
                self._ledger.seen_behind.add((check, ident))
        if not (verdict.announce or verdict.summarised):
            return
        suppressions = self._suppressions(now)
        for subject, occurrence in verdict.announce:
            key = AlertKey(check, subject, OCCURRENCE_METRIC)
            if suppressions.muted(key, run.check_type, now, occurrence.severity.label):
                continue
            event = Event(
                id=event_id(check, occurrence),
                kind=EventKind.OCCURRENCE,
                key=key,
                severity=occurrence.severity,
                time=now,
                host=self.host,
                check_type=run.check_type,
                since=occurrence.time,
                summary=occurrence.summary,
                facts=dict(occurrence.facts),
                details=occurrence.details,
                reason=occurrence.reason,
            )
            self._audit("OCCURRENCE %s: %s", key, occurrence.summary)
            self._enqueue(notice_recipients(check, occurrence.severity, self.recipients, {}), event)
        if verdict.summarised:
            text, severity = summary_text(verdict.summarised)
            key = AlertKey(check, "", OCCURRENCE_METRIC)
            if not suppressions.muted(key, run.check_type, now, severity.label):
                ident, said = f"{check}:first-run:{int(now)}", ENGLISH.text(text)
                event = notice_event(ident, key, said, now=now, host=self.host, severity=severity, reason=text)
                self._enqueue(notice_recipients(check, severity, self.recipients, {}), event)

    # ------------------------------------------------------------ notification
    def _suppressions(self, now: float) -> Suppressions:
        return Suppressions(
            windows=self.config.alerting.maintenance,
            silences=tuple(self.silences.values()),
            inhibit=self.config.alerting.inhibit,
            open_keys=tuple((k, s.check_type, severity_label(s)) for k, s in self.states.items() if s.phase.open),
        )

    def _notify(self, touched: Mapping[AlertKey, Tuple[Transition, ...]], now: float, mono: float) -> None:
        suppressions = self._suppressions(now)
        for key, changes in touched.items():
            state = self.states[key]
            muted = suppressions.muted(key, state.check_type, now, severity_label(state))
            for change in changes:
                if change.change in (Change.FLAP_START, Change.FLAP_END) and not muted:
                    self._flap_notice(key, state, change, now, mono)
            reason = muted or ("flapping" if state.flapping else "")
            if reason:
                for change in changes:
                    if change.change in (Change.FIRE, Change.RESOLVE):
                        log.info("%s %s while muted (%s): not notified yet", change.change.value.upper(), key, reason)
                self.states[key] = evolve(self.states[key], suppressed=reason)
                continue
            self._reconcile(key, now, mono)

    def _reconcile(self, key: AlertKey, now: float, mono: float) -> None:
        state = self.states[key]
        heard = self.heard.get(key, {})
        ack = self.acks.get(key)
        acked = ack.severity if ack is not None and ack.active(state.incident, now) else None
        after = state.suppressed
        decision = reconcile(
            key, state, heard, self.recipients, self._params(key), acked_severity=acked, after_suppression=bool(after)
        )
        by_kind: Dict[EventKind, List[str]] = {}
        for receiver, kind in decision.sends:
            by_kind.setdefault(kind, []).append(receiver)
        seq = state.seq
        for kind, receivers in by_kind.items():
            seq += 1
            source = heard[receivers[0]] if kind == EventKind.RESOLVED else None
            incident = source.incident if source else state.incident
            severity = source.severity if source else state.severity
            note = ""
            if after:
                note = f"started during {after}" if kind == EventKind.FIRING else f"while {after}"
            event = alert_event(
                kind,
                key,
                state,
                incident=incident,
                event_id=f"{incident}:{seq}",
                severity=severity,
                now=now,
                mono=mono,
                host=self.host,
                note=note,
            )
            self._audit("%s %s %s %s", kind.value.upper(), severity.label, key, event.summary)
            self._enqueue(receivers, event)
        notified = any(k != EventKind.RESOLVED for k in by_kind)
        if by_kind or state.suppressed:  # else nothing changes (the common case: a quiet key)
            self.states[key] = evolve(
                state, seq=seq, suppressed="", last_notified_at=mono if notified else state.last_notified_at
            )
        if decision.heard:
            self.heard[key] = dict(decision.heard)
        else:
            self.heard.pop(key, None)
        if ack is not None and (decision.clear_ack or not state.phase.open):
            del self.acks[key]
            self._dirty.acks.add(key)

    def _flap_notice(self, key: AlertKey, state: AlertState, change: Transition, now: float, mono: float) -> None:
        from monagent.alerting.flap import percent_state_change

        starting = change.change == Change.FLAP_START
        percent = percent_state_change(state.flap_hist)
        if starting:
            reason = Text("flap.started", {"percent": round(percent)})
        else:
            reason = Text("flap.ended", {"percent": round(percent), "phase": Text(f"phase.{state.phase.value}")})
        summary = ENGLISH.text(reason)
        seq = state.seq + 1
        ident = f"{state.incident or self._prefix(key)}:{seq}"
        severity = max(state.severity, Status.WARNING)
        event = Event(
            id=ident,
            kind=EventKind.FLAP_START if starting else EventKind.FLAP_END,
            key=key,
            severity=severity,
            time=now,
            host=self.host,
            summary=summary,
            incident=state.incident,
            check_type=state.check_type,
            value=state.value,
            unit=state.unit,
            reason=reason,
        )
        self.states[key] = evolve(self.states[key], seq=seq)
        self._audit("%s %s %s", event.kind.value.upper(), key, summary)
        self._enqueue(notice_recipients(key.check, severity, self.recipients, self.heard.get(key, {})), event)

    def _remind(self, now: float, mono: float) -> None:
        """Send the reminders due; remember when the next one falls due, so ticks before it skip the scan."""
        suppressions: Optional[Suppressions] = None
        upcoming: List[float] = []
        for key, state in list(self.states.items()):
            if state.flapping:
                continue  # a flap's end is an observe, which looks again
            params = self._params(key)
            if not reminder_due(state, mono, params):
                at = reminder_at(state, params)
                if at is not None:
                    upcoming.append(max(at, mono + 0.001))
                continue
            ack = self.acks.get(key)
            if ack is not None and ack.active(state.incident, now):
                if ack.expires_at is not None:
                    upcoming.append(mono + max(0.001, ack.expires_at - now))
                continue  # a new incident is an observe, which looks again
            suppressions = suppressions or self._suppressions(now)
            if suppressions.muted(key, state.check_type, now, severity_label(state)):
                upcoming.append(mono + RECHECK)  # the mute may end at any time (windows, silences)
                continue
            receivers = reminder_recipients(state, self.heard.get(key, {}))
            seq = state.seq + (1 if receivers else 0)
            self.states[key] = after = evolve(
                state, seq=seq, last_notified_at=mono, reminders_sent=state.reminders_sent + (1 if receivers else 0)
            )
            at = reminder_at(after, params)
            if at is not None:
                upcoming.append(max(at, mono + 0.001))
            self._dirty.keys.add(key)
            if receivers:
                event = alert_event(
                    EventKind.REMINDER,
                    key,
                    state,
                    incident=state.incident,
                    event_id=f"{state.incident}:{seq}",
                    severity=state.severity,
                    now=now,
                    mono=mono,
                    host=self.host,
                )
                self._enqueue(receivers, event)
        self._remind_at = min(upcoming) if upcoming else float("inf")

    def _expire_acks(self, now: float) -> None:
        for key, ack in list(self.acks.items()):
            state = self.states.get(key)
            if state is None or not ack.active(state.incident, now):
                del self.acks[key]
                self._dirty.acks.add(key)
                self._remind_at = None

    def _prune(self, now: float, mono: float) -> None:
        """Retention (d.8): idle inactive keys, old seen ids, long-expired silences."""
        retention = self.config.alerting.retention
        for key, state in list(self.states.items()):
            told = any(h.firing() for h in self.heard.get(key, {}).values())
            idle = state.last_sample_at is None or mono - state.last_sample_at > retention
            if state.phase == Phase.INACTIVE and not told and idle:
                del self.states[key]
                self.heard.pop(key, None)
                self._dirty.keys.add(key)
        for check, seen in self.seen.items():
            for ident in expired(seen, now, self.config.alerting.seen_ttl):
                del seen[ident]
                self._dirty.seen.add((check, ident))
        for ident, silence in list(self.silences.items()):
            if silence.ends_at < now - retention:
                del self.silences[ident]
                self._dirty.silences.add(ident)
        self._digests = {key: digest for key, digest in self._digests.items() if key in self.states}

    def _enqueue(self, receivers: Iterable[str], event: Event) -> None:
        for receiver in receivers:
            self._dirty.outbox.append((receiver, event))

    # ------------------------------------------------------------ committing
    def _commit(self, now: float, flush: bool = False) -> int:
        """One transaction; on failure everything stays dirty for the next try. Returns entries committed.

        Keys whose last-sample fields alone changed wait for ``flush`` or the periodic flush (persist.py)."""
        offset = self._now - self._mono
        flush = self._ledger.clock_moved(offset) or flush or self._ledger.flush_due(self._mono)
        eval_at = self._eval_at
        changes, update = persist.changes(self._dirty, self, offset, self._ledger, flush)
        if eval_at is not None and (changes or flush or not self._eval_written):
            # last_eval_at (where the outage gap is measured from) rides along with any other write, else
            # goes in with the periodic flush: a quiet agent writes about once a minute, not every cycle.
            changes.meta.setdefault("last_eval_at", repr(eval_at))
        if not changes:
            self._ledger.record(update, flush, self._mono, offset)
            self._dirty = persist.Dirty()
            return 0
        try:
            self.store.commit(changes, now)
        except StoreUnavailable as exc:
            held = len(self._dirty.outbox)
            if held:
                log.debug("%d outbox entries held in memory until the store is writable", held)
            return self._deliver_without_store(str(exc), now)
        except StoreBroken as exc:
            problem = f"delivery stopped: the state database refused a commit ({exc}); {len(self._dirty.outbox)} events held"
            if not self.delivery_stopped:
                log.error("%s; this is a bug, please report it; the watchdog is no longer fed", problem)
            self.delivery_stopped = problem
            return 0
        if self.delivery_stopped:
            log.warning("the state database accepts commits again; delivery resumes")
            self.delivery_stopped = ""
        self._unwritable = False
        self._ledger.record(update, flush, self._mono, offset)
        if eval_at is not None and "last_eval_at" in changes.meta:
            self._eval_written = True
            if self._eval_at == eval_at:
                self._eval_at = None
        count = len(self._dirty.outbox)
        self._dirty = persist.Dirty()
        return count

    def _deliver_without_store(self, why: str, now: float) -> int:
        """The state directory refuses writes (full, read-only): a full /var must not hide its own alert.
        The console gets every event and every receiver the agent's own notices (this one first),
        from memory and marked not durable; the rest waits in memory for the next commit."""
        if not self._unwritable:
            self._unwritable = True
            before = len(self._dirty.outbox)
            self._notice(
                f"state-unwritable:{int(now)}",
                "state",
                Text("notice.state_unwritable", {"dir": str(self.config.agent.state_dir), "why": why}),
                now,
            )
            self._dirty.outbox = self._dirty.outbox[before:] + self._dirty.outbox[:before]  # the notice first
        kept: List[Tuple[str, Event]] = []
        handed = 0
        for receiver, event in self._dirty.outbox:
            if receiver == CONSOLE or event.key.check == AGENT_CHECK:
                self.store.hold_volatile(*persist.outbox_row(receiver, event))
                handed += 1
            else:
                kept.append((receiver, event))
        self._dirty.outbox = kept
        return handed

    # ------------------------------------------------------------ silences and acks (control socket, CLI)
    def request(self, message: Mapping[str, Any], now: Optional[float] = None) -> Dict[str, Any]:
        """A silence or ack request from the control socket: decided by :func:`silence_ack.decide` (the
        rules the CLI applies when no agent runs), committed, answered; a refused one changes nothing."""
        try:
            return self.decide(message, now).answer()
        except (BadRequest, NotFound) as exc:
            return refusal(exc)

    def decide(self, message: Mapping[str, Any], now: Optional[float] = None) -> Decision:
        """Decide, keep and commit one request; raises :class:`BadRequest` or :class:`NotFound`."""
        now = time.time() if now is None else now
        with self._lock:
            decision = decide(message, silences=self.silences, alerts=self.states, now=now)
            self.record(decision)
        if decision.ack is not None:
            ack = decision.ack
            log.info("%s acknowledged by %s: %s", ack.key, ack.author or "?", ack.comment)
        elif message.get("op") == "silence_expire" and decision.silence is not None:
            log.info("silence %s expired", decision.silence.id)
        elif decision.silence is not None:
            silence = decision.silence
            log.info(
                "silence %s added by %s until %s: %s (%s)",
                silence.id,
                silence.author or "?",
                ENGLISH.time(silence.ends_at),
                silence.matcher.describe(),
                silence.comment,
            )
        return decision

    def record(self, decision: Decision) -> None:
        """Keep a decided change in memory and commit it (a test may hand one no request would pass)."""
        with self._lock:
            if decision.silence is not None:
                self.silences[decision.silence.id] = decision.silence
                self._dirty.silences.add(decision.silence.id)
            if decision.ack is not None:
                self.acks[decision.ack.key] = decision.ack
                self._dirty.acks.add(decision.ack.key)
            self._remind_at = None
            self._commit(self._now)

    def add_silence(
        self,
        matchers: Sequence[str],
        *,
        ends_at: float,
        starts_at: Optional[float] = None,
        author: str = "",
        comment: str = "",
        now: Optional[float] = None,
    ) -> Silence:
        """The ``silence_add`` request; raises :class:`BadRequest`."""
        message = {"op": "silence_add", "matchers": list(matchers), "ends_at": ends_at, "starts_at": starts_at}
        silence = self.decide({**message, "author": author, "comment": comment}, now).silence
        assert silence is not None
        return silence

    def expire_silence(self, silence_id: str, now: Optional[float] = None) -> Silence:
        """The ``silence_expire`` request; raises :class:`NotFound` (a KeyError) for an unknown id."""
        silence = self.decide({"op": "silence_expire", "id": silence_id}, now).silence
        assert silence is not None
        return silence

    def ack(
        self,
        key_text: str,
        *,
        author: str = "",
        comment: str = "",
        expires_at: Optional[float] = None,
        now: Optional[float] = None,
    ) -> Ack:
        """The ``ack`` request; raises :class:`NotFound` (a KeyError) when no firing alert has that key."""
        message = {"op": "ack", "key": key_text, "author": author, "comment": comment, "expires_at": expires_at}
        ack = self.decide(message, now).ack
        assert ack is not None
        return ack


__all__ = ["AGENT_CHECK", "AlertPipeline", "find_key"]
