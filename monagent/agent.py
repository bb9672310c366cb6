"""The running agent: the cycle loop, the delivery thread, signals and reload.

This is the I/O shell around the pure parts. Per cycle: the scheduler hands over
finished runs, the alert pipeline evaluates them and commits new states and
outbox entries in one transaction, and only then is the delivery thread woken to
pump each receiver's dispatcher. SIGHUP validates the new file and swaps it in
(a broken file keeps the running configuration); SIGTERM stops scheduling, lets
in-flight sends finish within a deadline, and exits 0 with everything else kept in
the outbox.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple, Union

# Every import here is one `monagent run` needs at every start, so importing them up front costs the
# agent's start-up nothing; `validate`, `check` and the other commands never import this module.
# What only some agents use stays lazy below, each with its reason.
from monagent import bootinquiry
from monagent import config as config_module
from monagent.alerting.control_handler import ControlHandler
from monagent.alerting.outbox import EventOutbox
from monagent.alerting.pipeline import AlertPipeline
from monagent.confread import ConfigError
from monagent.context import SystemFacts
from monagent.control import ControlServer
from monagent.firstcycle import FirstCycle
from monagent.lazylog import get_logger
from monagent.loader import Registry
from monagent.logsetup import setup_logging
from monagent.metrics import CycleHistogram, MetricsServer, MetricsServerError
from monagent.notify.build import build_dispatchers
from monagent.permissions import secret_warnings
from monagent.scheduler import Scheduler, build_instances
from monagent.sdnotify import SystemdNotifier, WatchdogGate, status_line
from monagent.startup import StartFailure, prepare_state_dir
from monagent.statelock import StateDirBusy, StateLock
from monagent.statelock import claim as claim_state_dir
from monagent.store import Store, StoreError

if TYPE_CHECKING:
    from monagent.checkrun import CheckRun
    from monagent.config import Config  # annotations only, as the three below
    from monagent.notify.base import Dispatcher, Outbox

log = get_logger(__name__)

EX_CANTCREAT = 73  # sysexits.h, as in monagent.cli (imported lazily there)
EX_TEMPFAIL = 75

# The loop sleeps until a check or a pipeline timer is due, a run ends or a signal; at most this (WatchdogSec/2).
LOOP_MAX_SLEEP = 30.0
STATUS_REFRESH = 30.0  # the systemd STATUS= line is recomputed after runs, else this often
LANE_IDLE = 300.0  # a delivery lane with nothing queued or due looks again this often (it is woken for new entries)


def _max_sleep(watchdog_interval: Optional[float]) -> float:
    return LOOP_MAX_SLEEP if watchdog_interval is None else min(LOOP_MAX_SLEEP, watchdog_interval)


class _Lane:
    """The delivery thread of one receiver: pumps its dispatcher when woken and when it is due."""

    def __init__(self, outbox: Outbox, dispatcher: Dispatcher) -> None:
        self.outbox = outbox
        self.dispatcher = dispatcher
        self.wake = threading.Event()
        self.stopping = threading.Event()
        name = getattr(dispatcher, "receiver_name", "receiver")
        self.thread = threading.Thread(target=self._loop, name=f"delivery:{name}", daemon=True)

    def _loop(self) -> None:
        dispatcher = self.dispatcher
        while not self.stopping.is_set():
            self.wake.clear()  # before the pump: entries committed during it wake the wait below at once
            # A receiver's bug must not stop delivery; it is logged with its traceback.
            try:
                dispatcher.pump(self.outbox, time.time())
                due = dispatcher.next_due(time.time())
            except Exception:
                log.exception("delivery to %s failed", getattr(dispatcher, "receiver_name", dispatcher))
                due = time.time() + 30.0
            # Idle, the lane sleeps until the pipeline commits entries for it (wake), not on a timer.
            timeout = LANE_IDLE if due is None else min(LANE_IDLE, max(0.05, due - time.time()))
            self.wake.wait(timeout)


class Delivery:
    """One delivery lane (thread) per receiver, so a slow or hostile receiver delays only itself."""

    def __init__(self, outbox: Outbox, dispatchers: List[Dispatcher]) -> None:
        self.outbox = outbox
        self.dispatchers = dispatchers
        self._lock = threading.Lock()
        self._lanes = [_Lane(outbox, d) for d in dispatchers]
        self._started = False

    def start(self) -> None:
        with self._lock:
            self._started = True
            for lane in self._lanes:
                lane.thread.start()

    def wake(self) -> None:
        with self._lock:
            lanes = list(self._lanes)
        for lane in lanes:
            lane.wake.set()

    def replace(self, dispatchers: List[Dispatcher]) -> None:
        new = [_Lane(self.outbox, d) for d in dispatchers]
        with self._lock:
            old, self._lanes, self.dispatchers = self._lanes, new, dispatchers
            if self._started:
                for lane in new:
                    lane.thread.start()
        for lane in old:
            lane.stopping.set()
            lane.wake.set()
        for lane in old:
            lane.dispatcher.close(time.monotonic() + 5.0)

    def stop(self, deadline: float) -> None:
        with self._lock:
            lanes = list(self._lanes)
        for lane in lanes:
            lane.stopping.set()
            lane.wake.set()
        for lane in lanes:
            if lane.thread.is_alive():
                lane.thread.join(max(0.0, deadline - time.monotonic()))
        for lane in lanes:
            lane.dispatcher.close(deadline)


class Agent:
    def __init__(self, path: Path, *, log_level: Optional[str] = None, environ: Optional[Dict[str, str]] = None) -> None:
        self.path = Path(path)
        self.environ = dict(os.environ if environ is None else environ)
        self.config: Config = config_module.load(self.path, self.environ)
        setup_logging(log_level or self.config.agent.log_level)
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._wake = threading.Event()  # the loop sleeps on this: a finished run, a signal or stop() sets it
        self.cycle_histogram = CycleHistogram()
        self.last_runs: Dict[str, CheckRun] = {}
        self._outbox_depth: Optional[int] = None  # the STATUS= line's outbox count, recounted now and then
        self.first_cycle: Optional[FirstCycle] = None
        self.started_at = time.time()
        # The running parts, built by run() (None before it and in a test that only loads the config).
        self.scheduler: Optional[Scheduler] = None
        self.pipeline: Optional[AlertPipeline] = None
        self.store: Optional[Store] = None
        self.delivery: Optional[Delivery] = None

    # -- signals
    def _install_signals(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        signal.signal(signal.SIGHUP, lambda *_: self._request(self._reload))

    def stop(self) -> None:
        """Ask the loop to stop (what SIGTERM does)."""
        self._request(self._stop)

    def _request(self, flag: threading.Event) -> None:
        flag.set()
        self._wake.set()

    # -- building the parts from a config
    def run(self) -> int:
        faulthandler.enable()  # a watchdog SIGABRT then prints every thread's stack to the journal
        from monagent import warden

        warden.enable()  # children's process groups die with the agent, even a SIGKILLed one (#13)
        config = self.config
        self._warn_permissions(config)
        self._install_signals()
        # Worker processes and Nagios plugins must not inherit NOTIFY_SOCKET / WATCHDOG_*: unset them here.
        notifier = SystemdNotifier.from_environ(os.environ, unset=True)
        opened = self._open_state(config)
        if isinstance(opened, int):
            return opened
        state_lock, store = opened
        facts = SystemFacts(config.agent.hostname, pool_size=config.agent.max_workers, long_lived=True)
        now, mono = time.time(), time.monotonic()
        self.started_at = now
        pipeline = AlertPipeline(config, store, now=now, monotonic=mono, boot_id=facts.cycle(now, mono).boot_id())
        scheduler = Scheduler(
            build_instances(config.checks, Registry.for_agent(config.agent)),
            facts.cycle,
            monotonic=mono,
            splay=config.agent.splay,
            wake=self._wake,
        )
        delivery = Delivery(EventOutbox(store), build_dispatchers(config.notifiers, config.agent.hostname, store, started_at=now))
        self.scheduler, self.pipeline, self.store, self.delivery = scheduler, pipeline, store, delivery
        delivery.start()
        control = self._start_control(config, pipeline)
        metrics = self._start_metrics(config, scheduler, pipeline, store)
        log.info(
            "monagent started: %d checks, receivers: %s, state in %s",
            len(config.checks),
            ", ".join(config.notifiers.receiver_names) or "none",
            config.agent.state_dir,
        )
        self.first_cycle = FirstCycle((c.name for c in config.checks if c.enabled), {c.name: c.thresholds for c in config.checks})
        notifier.ready()
        clean = False
        try:
            self._explain_previous_boot(config, scheduler, pipeline, facts)
            self._loop(notifier)
            clean = True
        finally:
            notifier.stopping()
            stop_deadline = self.config.agent.stop_deadline
            log.info("stopping: in-flight sends get %.3g s, everything else stays in the outbox", stop_deadline)
            scheduler.close()
            delivery.stop(time.monotonic() + stop_deadline)
            for server in (control, metrics):
                if server is not None:
                    server.stop()
            pipeline.close(clean=clean)  # an exception exit is reported as an unclean stop at the next start
            facts.close()
            store.close()
            state_lock.release()
            warden.shutdown()
        return 0

    def _open_state(self, config: Config) -> Union[int, Tuple[StateLock, Store]]:
        """``(lock, store)``, or the exit code after one line saying why the state cannot be used."""
        try:
            prepare_state_dir(config.agent.state_dir, self.environ)
            state_lock = claim_state_dir(config.agent.state_dir)
        except StartFailure as failure:
            log.error("%s", failure)
            return failure.code
        except StateDirBusy as busy:
            log.error("%s", busy)
            return EX_TEMPFAIL
        try:
            return state_lock, Store.open(config.agent.state_dir)
        except StoreError as exc:
            state_lock.release()
            log.error("%s; nothing was started", exc)
            return EX_CANTCREAT

    def dispatchers(self) -> List[Dispatcher]:
        return list(self.delivery.dispatchers) if self.delivery is not None else []

    def _parts(self) -> Tuple[Scheduler, AlertPipeline, Store, Delivery]:
        """The running parts; run() builds them before anything calls this."""
        if self.scheduler is None or self.pipeline is None or self.store is None or self.delivery is None:
            raise RuntimeError("the agent's parts are not built: Agent.run() builds them")
        return self.scheduler, self.pipeline, self.store, self.delivery

    def _loop(self, notifier: SystemdNotifier) -> None:
        scheduler, pipeline, _, delivery = self._parts()
        gate = WatchdogGate(notifier.watchdog_interval())
        last_status = ""
        status_at = 0.0
        while not self._stop.is_set():
            started = time.monotonic()
            now, mono = time.time(), started
            runs = scheduler.step(now, mono)
            queued = pipeline.observe(runs, now, mono) if runs else 0
            queued += pipeline.tick(now, mono)
            if queued:
                delivery.wake()
            if runs:
                for run in runs:
                    self.last_runs[run.check] = run
                summary = self.first_cycle.observe(runs) if self.first_cycle is not None else None
                if summary:
                    log.info("%s", summary)
                self.cycle_histogram.observe(time.monotonic() - started)
            if not scheduler.unhealthy and not pipeline.delivery_stopped:
                gate.progress(time.monotonic())  # a store that refuses commits (a bug) lets systemd restart us
            if gate.due(time.monotonic()):
                notifier.watchdog()
            if notifier.enabled and (runs or queued or time.monotonic() - status_at >= STATUS_REFRESH):
                # The outbox is counted (a query per receiver) when events were queued or every
                # STATUS_REFRESH, not after every run: sends only shrink it, and 30 s late is fine.
                recount = bool(queued) or time.monotonic() - status_at >= STATUS_REFRESH
                if recount:
                    status_at = time.monotonic()
                status = self._status_line(recount)
                if status != last_status:
                    notifier.status(status)
                    last_status = status
            if self._reload.is_set():
                self._reload.clear()
                notifier.reloading()
                self._do_reload()
                notifier.ready()
            # Asleep until the next due run or timeout, a finished run (the scheduler sets _wake), a
            # signal, or at the latest LOOP_MAX_SLEEP / the watchdog's interval.
            mono = time.monotonic()
            wake_at = min(scheduler.next_wakeup(mono), pipeline.next_timer(time.time(), mono), mono + _max_sleep(gate.interval))
            self._wake.wait(max(0.0, wake_at - time.monotonic()))
            self._wake.clear()

    # -- pieces of run()
    def _explain_previous_boot(self, config: Config, scheduler: Scheduler, pipeline: AlertPipeline, facts: SystemFacts) -> None:
        """Before the loop: every source read (each with its bound), one message about the previous boot."""
        started = time.monotonic()
        try:
            verdict = bootinquiry.explain_previous_boot(config, scheduler, pipeline, facts)
        except Exception:  # a fault here must not keep the agent from watching this boot
            log.exception("the previous boot could not be explained; monitoring goes on without that message")
            return
        if verdict is not None:
            log.info("the previous boot was explained in %.1f s: %s", time.monotonic() - started, verdict.end.value)
            self._parts()[3].wake()

    def _warn_permissions(self, config: Config) -> None:
        for warning in secret_warnings(self.path, config):
            log.warning("%s", warning)

    def _status_line(self, recount: bool = True) -> str:
        scheduler, pipeline, store, _ = self._parts()
        if pipeline.delivery_stopped:
            return str(pipeline.delivery_stopped)
        if recount or self._outbox_depth is None:
            self._outbox_depth = sum(store.queued_count(r) for r in self.config.notifiers.receiver_names)
        return status_line(len(scheduler.instances), pipeline.firing_count(), self._outbox_depth)

    def _start_control(self, config: Config, pipeline: AlertPipeline) -> Optional[ControlServer]:
        path = config.agent.runtime_dir / "control.sock"
        try:
            server = ControlServer(path, ControlHandler(pipeline))
            server.start()
        except OSError as exc:
            log.warning(
                "control socket %s not available (%s); silence and ack write the store directly", path, exc.strerror or exc
            )
            return None
        return server

    def _start_metrics(
        self, config: Config, scheduler: Scheduler, pipeline: AlertPipeline, store: Store
    ) -> Optional[MetricsServer]:
        if not config.metrics.enabled:
            return None
        # Lazy: only an agent with [metrics] enabled builds snapshots of its parts for the endpoint.
        from monagent.metrics_state import build_snapshot

        server = MetricsServer(config.metrics, lambda: build_snapshot(self, scheduler, pipeline, store))
        try:
            server.start()
        except MetricsServerError as exc:
            log.error("%s; the agent runs on without the metrics endpoint", exc)
            return None
        return server

    def _do_reload(self) -> Optional[Config]:
        config = self.config
        scheduler, pipeline, store, delivery = self._parts()
        try:
            new = config_module.load(self.path, self.environ)
        except ConfigError as err:
            log.error("reload of %s refused; the running configuration stays in force:", self.path)
            for problem in err.problems:
                log.error("  %s", problem)
            return None
        except Exception:
            log.exception("reload of %s refused (an error inside monagent); the running configuration stays in force", self.path)
            return None
        old_by_name = {c.name: c for c in config.checks}
        mono = time.monotonic()
        for name in list(scheduler.instances):
            if new.check(name) is None:
                scheduler.remove(name)
        if self.first_cycle is not None:
            self.first_cycle.forget(set(old_by_name) - {c.name for c in new.checks if c.enabled})
        changed = [c for c in new.checks if old_by_name.get(c.name) != c]
        for check_config in changed:
            scheduler.remove(check_config.name)
        for check_config, check in build_instances(changed, Registry.for_agent(new.agent)):
            scheduler.add(check_config, check, mono)
        pipeline.reload(new)
        if new.notifiers != config.notifiers:
            delivery.replace(build_dispatchers(new.notifiers, new.agent.hostname, store, started_at=self.started_at))
        self.config = new
        log.info("configuration reloaded from %s: %d checks (%d changed)", self.path, len(new.checks), len(changed))
        return new
