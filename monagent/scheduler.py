"""Running check instances on their own intervals, isolated from each other.

Every instance runs on a grid shared by the whole agent: one random phase per agent (the
``[agent] splay``) and multiples of the instance's interval from it, so checks due together
(same interval, or intervals that are multiples of each other) start in the same step and
share one context (one process scan, one mount table), one ``observe`` and at most one
commit. The splay spreads a fleet's load without splitting one host's work. Types with
``run_at_start`` run at once and then join the grid; an instance with its own ``splay``
(``[checks.NAME] splay``) gets a phase of its own. A run still in flight when the next is due is
skipped, never stacked. Each instance runs in a long-lived thread of its
own: a run that raises yields UNKNOWN with the exception text (traceback logged once);
one that passes its timeout yields UNKNOWN "still running after N s" and is abandoned with
its thread (Python threads cannot be killed; calls that can block in the kernel go
through the context's worker processes, which have hard timeouts). Every later run that
falls due while the abandoned one has not returned is a failed run "hung (the run started at
HH:MM has not returned)", so the check's "check failing" streak grows and alerts like any other
failure. Facts are
gathered once per cycle: every check started in one step shares one context. When the last run
in flight ends, the scheduler sets the ``wake`` event it was given, so the loop waiting on it
collects the cycle's runs at once (in one step: one ``observe``, at most one commit) instead of
at its next timer; a run past its timeout no longer counts as in flight.

The scheduler never reads the clock: ``step(now, monotonic)`` is given the time.
"""

from __future__ import annotations

import math
import random
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Type

from monagent.api import Check, Context, Result, Status
from monagent.checkrun import CheckRun
from monagent.config import CheckConfig
from monagent.formatting import Formatter, Words
from monagent.lazylog import get_logger

log = get_logger(__name__)

ABANDONED_THREAD_CAP = 20


def build_check(check_class: Type[Check], config: CheckConfig) -> Check:
    """Build one instance from its validated options (see :func:`monagent.options.instance_kwargs`)."""
    from monagent.options import instance_kwargs

    return check_class(**instance_kwargs(check_class, config.options, config.timeout))


def build_instances(checks: Iterable[CheckConfig], registry: Any) -> List[Tuple[CheckConfig, Check]]:
    """Resolve and build every instance; one whose type or constructor fails reports UNKNOWN instead."""
    from monagent.loader import broken_check_class

    pairs = []
    for check_config in checks:
        cls = registry.resolve(check_config.type) or broken_check_class(check_config.type, "unknown check type")
        try:
            pairs.append((check_config, build_check(cls, check_config)))
        except Exception as exc:  # noqa: BLE001 - a plugin constructor that raises disables only its check
            log.error("check %s could not be built: %s: %s", check_config.name, type(exc).__name__, exc)
            pairs.append((check_config, broken_check_class(check_config.type, f"{type(exc).__name__}: {exc}")()))
    return pairs


@dataclass
class _Run:
    started_mono: float
    started_wall: float
    done: threading.Event
    box: Dict[str, Any] = field(default_factory=dict)
    timed_out: bool = False


@dataclass
class _Job:
    check: Check
    ctx: Context
    run: _Run
    name: str
    finished: Optional[Callable[[_Run], None]] = None  # the scheduler's bookkeeping when the run is done


class _Lane:
    """One thread that runs its queued runs one after another: the shared lane of non-blocking checks
    (``Check.non_blocking``), or the lane of one instance of its own.

    When a run on the shared lane passes its timeout the lane is abandoned: its thread finishes (or
    never finishes) that run and exits, and the runs still queued move to a new lane.
    """

    def __init__(self, name: str = "checks:shared") -> None:
        self._jobs: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.current: Optional[_Run] = None
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: _Job) -> None:
        with self._cond:
            self._jobs.append(job)
            self._cond.notify()

    def holds(self, run: _Run) -> bool:
        with self._cond:
            return self.current is run or any(job.run is run for job in self._jobs)

    def abandon(self) -> List[_Job]:
        """Stop taking runs; return those not started yet."""
        with self._cond:
            self._closed = True
            pending = list(self._jobs)
            self._jobs.clear()
            self._cond.notify()
        return pending

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job = self._jobs.popleft()
                self.current = job.run
            _execute(job.check, job.ctx, job.run.box, job.name)
            if job.finished is not None:
                job.finished(job.run)
            else:
                job.run.done.set()
            with self._cond:
                self.current = None


@dataclass
class Instance:
    config: CheckConfig
    check: Check
    next_due: float
    run: Optional[_Run] = None
    lane: Optional[_Lane] = None  # its own thread, for a check that may block
    skipped: int = 0
    runs: int = 0
    timeouts: int = 0
    errors: int = 0
    last_duration: float = 0.0
    phase: float = 0.0  # monotonic origin of its grid: the agent's, or its own with a splay of its own


def normalise_results(value: Any) -> Tuple[Result, ...]:
    """What ``run()`` returned (one Result, an iterable of them, or None) as a tuple; anything else is a TypeError."""
    if isinstance(value, Result):
        return (value,)
    if value is None:
        return ()
    results = tuple(value)
    for item in results:
        if not isinstance(item, Result):
            raise TypeError(f"run() must return Result values, got {type(item).__name__}")
    return results


def _execute(check: Check, ctx: Context, box: Dict[str, Any], name: str) -> None:
    # The isolation boundary: any exception of check code (ours or a user's plugin) becomes
    # UNKNOWN for that check only; the scheduler and the other checks go on.
    try:
        box["results"] = normalise_results(check.run(ctx))
    except Exception as exc:
        from monagent.api import CheckError, StuckCall

        if isinstance(exc, (CheckError, StuckCall)):
            box["error"] = str(exc)
            if isinstance(exc, CheckError):
                box["reason"] = exc.reason  # a Text: said in each output's language
        else:
            log.error("check %s raised %s", name, type(exc).__name__, exc_info=True)
            box["error"] = f"{type(exc).__name__}: {exc}"


class Scheduler:
    def __init__(
        self,
        instances: Sequence[Tuple[CheckConfig, Check]],
        context_factory: Callable[[float, float], Context],
        *,
        monotonic: float,
        splay: float = 10.0,
        rng: Optional[random.Random] = None,
        wake: Optional[threading.Event] = None,
    ) -> None:
        self._context_factory = context_factory
        self._wake = wake  # set by a check's thread when the last run in flight is done (the loop waits on it)
        self._lock = threading.Lock()
        self._in_flight = 0  # runs started and neither done nor past their timeout
        self._rng = rng or random.Random()  # noqa: S311 - splay, not security
        self._splay = splay
        self._phase = monotonic + (self._rng.uniform(0, splay) if splay > 0 else 0.0)  # the agent's grid
        self.instances: Dict[str, Instance] = {}
        self.abandoned = 0
        self._lane: Optional[_Lane] = None
        for config, check in instances:
            self.add(config, check, monotonic)

    # -- membership
    def add(self, config: CheckConfig, check: Check, monotonic: float) -> None:
        """A new instance: due at once (``run_at_start``) or at its next slot on the grid."""
        instance = Instance(config, check, monotonic)
        if config.splay is not None:
            instance.phase = monotonic + self._rng.uniform(0, min(config.splay, config.interval))
        else:
            instance.phase = self._phase
        if not getattr(check, "run_at_start", False):
            instance.next_due = _slot_at_or_after(instance.phase, config.interval, monotonic)
        self.instances[config.name] = instance

    def remove(self, name: str) -> None:
        instance = self.instances.pop(name, None)
        if instance is not None:
            if instance.run is not None and not instance.run.timed_out:
                self._abandon(instance.run)  # never collected: it must not hold back the others' wake-up
            if instance.lane is not None:
                instance.lane.abandon()
            _close(instance.check)

    def close(self) -> None:
        for name in list(self.instances):
            self.remove(name)
        if self._lane is not None:
            self._lane.abandon()
            self._lane = None

    # -- the loop body
    def step(self, now: float, monotonic: float) -> List[CheckRun]:
        """Collect finished and timed-out runs, then start what is due. Returns finished runs."""
        finished = self._collect(now, monotonic)
        due = [i for i in self.instances.values() if i.config.enabled and i.next_due <= monotonic]
        if due:
            ctx = self._context_factory(now, monotonic)
            for instance in due:
                hung = self._start(instance, ctx, now, monotonic)
                if hung is not None:
                    finished.append(hung)
        return finished

    def next_wakeup(self, monotonic: float) -> float:
        """The monotonic time of the next due run or timeout."""
        times = []
        for instance in self.instances.values():
            if not instance.config.enabled:
                continue
            times.append(instance.next_due)
            if instance.run is not None and not instance.run.timed_out:
                times.append(instance.run.started_mono + instance.config.timeout)
        return min(times) if times else monotonic + 1.0

    def run_all_once(
        self,
        now: float,
        monotonic: float,
        wait: Callable[[float], None],
        clock: Callable[[], Tuple[float, float]],
        *,
        only: Optional[Sequence[str]] = None,
        deadline: Optional[float] = None,
    ) -> List[CheckRun]:
        """Run every enabled instance (or those named in ``only``) once, now, and wait for each result
        or timeout (``monagent check``; the agent's start in a new boot). Past the monotonic
        ``deadline`` the runs still in flight are left to the loop, which collects them as usual."""
        ctx = self._context_factory(now, monotonic)
        chosen = [i for name, i in self.instances.items() if i.config.enabled and (only is None or name in only)]
        for instance in chosen:
            self._start(instance, ctx, now, monotonic)
        results: List[CheckRun] = []

        def waiting() -> bool:
            return any(i.run is not None and not i.run.timed_out for i in chosen)

        while waiting():
            wall, mono = clock()
            results.extend(self._collect(wall, mono))
            if deadline is not None and mono >= deadline:
                break
            if waiting():
                wait(0.01)
        return results

    @property
    def unhealthy(self) -> bool:
        """Too many runs still stuck past their timeout: stop feeding the watchdog so systemd restarts
        the agent. A stuck run that finally returns no longer counts."""
        return self.abandoned > ABANDONED_THREAD_CAP

    # -- internals
    def _start(self, instance: Instance, ctx: Context, now: float, monotonic: float) -> Optional[CheckRun]:
        """Start a due run; a run due while an abandoned one still hangs is returned as a failed run."""
        # The next slot on the instance's grid at least half an interval away (slots missed while late
        # are skipped; a run_at_start run just before the first slot does not run again at that slot).
        interval = instance.config.interval
        instance.next_due = _slot_at_or_after(instance.phase, interval, monotonic + interval / 2)
        if instance.run is not None:
            instance.skipped += 1
            if instance.run.timed_out:
                return self._hung(instance, instance.run, now, monotonic)
            log.warning(
                "check %s: previous run still in flight, run skipped (%d skipped so far)", instance.config.name, instance.skipped
            )
            return None
        run = _Run(monotonic, now, threading.Event())
        instance.run = run
        with self._lock:
            self._in_flight += 1
        instance.runs += 1
        if getattr(instance.check, "non_blocking", False):
            if self._lane is None:
                self._lane = _Lane()
            self._lane.submit(_Job(instance.check, ctx, run, instance.config.name, self._finished_run))
            return None
        if instance.lane is None:
            instance.lane = _Lane(f"check:{instance.config.name}")
        instance.lane.submit(_Job(instance.check, ctx, run, instance.config.name, self._finished_run))
        return None

    def _hung(self, instance: Instance, run: _Run, now: float, monotonic: float) -> CheckRun:
        """The run due now cannot start: the abandoned one has not returned. A failed run, so it counts."""
        since = Formatter("en").clock(run.started_wall)
        # No "since" here: a console line and `status` append the alert's own "since HH:MM" (#13).
        reason = f"hung (the run started at {since} has not returned)"
        log.warning(
            "check %s: hung, the run started at %s has not returned after %s s; this run is reported UNKNOWN",
            instance.config.name,
            since,
            _fmt_seconds(monotonic - run.started_mono),
        )
        result = Result(status=Status.UNKNOWN, reason=reason)
        return CheckRun(instance.config.name, instance.config.type, now, 0.0, (result,), error=reason)

    def _collect(self, now: float, monotonic: float) -> List[CheckRun]:
        out: List[CheckRun] = []
        for instance in self.instances.values():
            run = instance.run
            if run is None:
                continue
            if run.done.is_set():
                instance.run = None
                instance.last_duration = monotonic - run.started_mono
                if run.timed_out:
                    self.abandoned -= 1
                    continue  # already reported as UNKNOWN; a late result is discarded
                out.append(self._finished(instance, run, monotonic))
            elif not run.timed_out and monotonic - run.started_mono >= instance.config.timeout:
                if not self._abandon(run):
                    continue  # it ended just now: collected at the next step (the loop is woken)
                instance.timeouts += 1
                self.abandoned += 1
                seconds = _fmt_seconds(monotonic - run.started_mono)
                log.warning("check %s still running after %s s; reported UNKNOWN", instance.config.name, seconds)
                self._free_lane_of(run)
                out.append(self._unknown(instance, run, monotonic, f"still running after {seconds} s"))
        return out

    def _finished_run(self, run: _Run) -> None:
        """From a check's thread: the run is done; the last one in flight wakes the loop."""
        with self._lock:
            run.done.set()
            if run.timed_out:
                return  # abandoned at its timeout: no longer counted
            self._in_flight -= 1
            idle = self._in_flight == 0
        if idle and self._wake is not None:
            self._wake.set()

    def _abandon(self, run: _Run) -> bool:
        """Mark a run past its timeout as abandoned (no longer in flight); False if it just ended."""
        with self._lock:
            if run.done.is_set():
                return False
            run.timed_out = True
            self._in_flight -= 1
            idle = self._in_flight == 0
        if idle and self._wake is not None:
            self._wake.set()  # the runs that ended while it hung are collected now
        return True

    def _free_lane_of(self, run: _Run) -> None:
        """A non-blocking check that hangs must not hold up the others: give them a new lane."""
        lane = self._lane
        if lane is None or not lane.holds(run):
            return
        self._lane = _Lane()
        for job in lane.abandon():
            self._lane.submit(job)

    def _finished(self, instance: Instance, run: _Run, monotonic: float) -> CheckRun:
        if "error" in run.box:
            instance.errors += 1
            return self._unknown(instance, run, monotonic, run.box["error"], run.box.get("reason"))
        return CheckRun(
            instance.config.name,
            instance.config.type,
            run.started_wall,
            monotonic - run.started_mono,
            tuple(run.box.get("results", ())),
        )

    def _unknown(self, instance: Instance, run: _Run, monotonic: float, error: str, reason: Optional[Words] = None) -> CheckRun:
        """The run as UNKNOWN: ``error`` in English (logs, ``check --json``), ``reason`` for messages."""
        result = Result(status=Status.UNKNOWN, reason=reason or error)
        return CheckRun(
            instance.config.name, instance.config.type, run.started_wall, monotonic - run.started_mono, (result,), error=error
        )


def _slot_at_or_after(phase: float, interval: float, monotonic: float) -> float:
    """The first ``phase + k * interval`` (k >= 0) not before ``monotonic``."""
    if monotonic <= phase:
        return phase
    return phase + math.ceil((monotonic - phase) / interval) * interval


def _fmt_seconds(seconds: float) -> str:
    return str(int(seconds)) if seconds >= 10 else f"{seconds:.1f}".rstrip("0").rstrip(".")


def _close(check: Check) -> None:
    try:
        check.close()
    except Exception:
        log.warning("close() of %s failed", type(check).__name__, exc_info=True)
