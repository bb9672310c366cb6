"""The plugin author's test kit: build a check the way the agent does, run it against fake
system facts, and look at what it reported and how monagent judges it.

Example (a whole pytest test)::

    from monagent.testing import FakeContext, fake_disk_usage, run_check
    from monagent.api import Status

    def test_a_full_spool_is_critical(tmp_path):
        report = run_check(QueueDepth, {"path": str(tmp_path)}, thresholds={"depth": {"critical": 0}})
        assert report.status == Status.CRITICAL
        assert report.value("depth") == 0

:func:`run_check` validates the options with the very code that reads ``agent.toml``
(unknown, missing or mistyped options raise :class:`~monagent.confread.ConfigError` with
the message the user would see), takes the thresholds from the class's
:class:`~monagent.api.MetricSpec` defaults overlaid with yours, and judges once, without
hysteresis, as ``monagent check`` does. Call it again with the same instance and a
:meth:`FakeContext.tick`-ed context to test rates and deltas.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypeVar,
    Union,
)

from monagent.api import (
    Check,
    CheckError,
    DiskUsage,
    Metric,
    Mount,
    Occurrence,
    ProcessInfo,
    Result,
    Status,
    StuckCall,
    Threshold,
    worst,
)
from monagent.confread import ConfigError, Document, Problem, Section
from monagent.oneshot import Judged, judge_all
from monagent.procfs import CpuTimes
from monagent.records import record
from monagent.scheduler import normalise_results

__all__ = [
    "HANGS",
    "CheckReport",
    "FakeContext",
    "build_check",
    "fake_cpu_times",
    "fake_disk_usage",
    "fake_mount",
    "fake_process",
    "run_check",
]

T = TypeVar("T")


class _Hangs(enum.Enum):
    HANGS = "hangs"


#: Put this where a fake fact would go to make the call hang (it raises StuckCall, as the agent's would).
HANGS = _Hangs.HANGS


# ---------------------------------------------------------------- fake facts


def fake_process(pid: int, comm: str, *, ppid: int = 1, state: str = "S", uid: int = 0) -> ProcessInfo:
    return ProcessInfo(pid=pid, ppid=ppid, comm=comm, state=state, uid=uid)


def fake_mount(
    mountpoint: str,
    fstype: str = "ext4",
    source: str = "/dev/sda1",
    *,
    options: Sequence[str] = ("rw",),
    device: str = "8:1",
    mount_id: int = 0,
) -> Mount:
    return Mount(
        mount_id=mount_id,
        parent_id=1,
        device=device,
        root="/",
        mountpoint=mountpoint,
        options=tuple(options),
        fstype=fstype,
        source=source,
        super_options=("rw",),
    )


def fake_disk_usage(
    total: int,
    used: int,
    free: Optional[int] = None,
    *,
    inodes_total: int = 1_000_000,
    inodes_used: int = 1_000,
    read_only: bool = False,
) -> DiskUsage:
    """A statvfs result; ``free`` (available to users) defaults to ``total - used`` (no reserved blocks)."""
    free = total - used if free is None else free
    return DiskUsage(
        total=total,
        used=used,
        free=free,
        inodes_total=inodes_total,
        inodes_used=inodes_used,
        inodes_free=inodes_total - inodes_used,
        read_only=read_only,
    )


def fake_cpu_times(**seconds: float) -> CpuTimes:
    """``psutil.cpu_times()``-shaped: ``fake_cpu_times(user=10, idle=90)``; unnamed fields are 0."""
    unknown = set(seconds) - set(CpuTimes._fields)
    if unknown:
        raise TypeError(f"unknown cpu_times fields: {', '.join(sorted(unknown))}; known: {', '.join(CpuTimes._fields)}")
    return CpuTimes(**{name: float(seconds.get(name, 0.0)) for name in CpuTimes._fields})


class FakeContext:
    """Implements :class:`monagent.api.Context` from values you set.

    Every fact is a plain attribute you may change between runs. ``disk_usage`` maps a
    path to a :class:`DiskUsage`, to an exception to raise, or to :data:`HANGS`.
    ``cpu_times`` is a sequence: each :meth:`tick` moves to the next sample (the last one
    repeats). ``run_blocking`` calls the function directly, unless ``blocking_hangs`` is
    true or the function is listed in ``hanging_functions``. Blocking calls are recorded
    in ``calls`` as ``(name, argument, timeout)``.
    """

    def __init__(
        self,
        *,
        hostname: str = "testhost",
        now: float = 1_700_000_000.0,
        monotonic: float = 1_000.0,
        proc_root: Path = Path("/proc"),
        processes: Sequence[ProcessInfo] = (),
        cmdlines: Optional[Mapping[int, Sequence[str]]] = None,
        mounts: Sequence[Mount] = (),
        disk_usage: Optional[Mapping[str, Any]] = None,
        cpu_times: Sequence[Any] = (),
        cpu_count: int = 1,
        boot_id: str = "00000000-0000-4000-8000-000000000000",
        boot_time: float = 1_699_990_000.0,
        blocking_hangs: bool = False,
        hanging_functions: Sequence[Callable[..., Any]] = (),
        long_lived: bool = False,
        remote_paths: Sequence[str] = (),
    ) -> None:
        self.hostname = hostname
        self.long_lived = long_lived
        self.remote_paths = tuple(remote_paths)  # is_local() is false at and under these
        self.now = now
        self.monotonic = monotonic
        self.proc_root = Path(proc_root)
        self.process_table = list(processes)
        self.cmdlines: Dict[int, Sequence[str]] = dict(cmdlines or {})
        self.mount_table = list(mounts)
        self.disks: Dict[str, Any] = dict(disk_usage or {})
        self.cpu_samples = list(cpu_times)
        self.cpu_index = 0
        self.online_cpus = cpu_count
        self.boot = boot_id
        self.boot_seconds = boot_time
        self.blocking_hangs = blocking_hangs
        self.hanging_functions = list(hanging_functions)
        self.calls: List[Tuple[str, Any, float]] = []

    def tick(self, seconds: float = 60.0) -> FakeContext:
        """The next cycle: the clocks advance and the next cpu_times sample becomes current."""
        self.now += seconds
        self.monotonic += seconds
        self.cpu_index += 1
        return self

    def processes(self) -> Sequence[ProcessInfo]:
        return tuple(self.process_table)

    def cmdline(self, pid: int) -> Sequence[str]:
        return tuple(self.cmdlines.get(pid, ()))

    def mounts(self) -> Sequence[Mount]:
        return tuple(self.mount_table)

    def disk_usage(self, path: str, timeout: float = 5.0) -> DiskUsage:
        self.calls.append(("statfs", path, timeout))
        fact = self.disks.get(path)
        if fact is HANGS:
            raise StuckCall(f"statfs of {path} did not return within {timeout:g}s")
        if isinstance(fact, BaseException):
            raise fact
        if fact is None:
            raise FileNotFoundError(2, "No such file or directory (no fake disk usage set)", path)
        assert isinstance(fact, DiskUsage)
        return fact

    def run_blocking(
        self, func: Callable[..., T], *args: Any, timeout: float = 10.0, path: Union[str, Sequence[str], None] = None
    ) -> T:
        name = getattr(func, "__qualname__", repr(func))
        self.calls.append((name, args, timeout))
        if self.blocking_hangs or func in self.hanging_functions:
            raise StuckCall(f"{name} did not return within {timeout:g}s")
        return func(*args)

    def is_local(self, path: str) -> bool:
        return not any(path == r or path.startswith(r.rstrip("/") + "/") for r in self.remote_paths)

    def cpu_times(self) -> Any:
        if not self.cpu_samples:
            raise LookupError("FakeContext has no cpu_times samples; pass cpu_times=[fake_cpu_times(...), ...]")
        return self.cpu_samples[min(self.cpu_index, len(self.cpu_samples) - 1)]

    def cpu_count(self) -> int:
        return self.online_cpus

    def boot_id(self) -> str:
        return self.boot

    def boot_time(self) -> float:
        return self.boot_seconds


if TYPE_CHECKING:  # mypy proves FakeContext satisfies the protocol checks are written against
    from monagent.api import Context

    def _conforms(ctx: FakeContext) -> Context:
        return ctx


# ---------------------------------------------------------------- building and judging


def _toml_like(value: Any) -> Any:
    """What TOML would have given: lists for tuples, strings for paths."""
    if isinstance(value, (list, tuple)):
        return [_toml_like(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _toml_like(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def _document(environ: Optional[Mapping[str, str]]) -> Document:
    return Document("<run_check>", "", environ or {})


def build_check(
    check_class: Type[Check],
    options: Optional[Mapping[str, Any]] = None,
    *,
    name: str = "test",
    environ: Optional[Mapping[str, str]] = None,
) -> Check:
    """Validate ``options`` as ``[checks.NAME]`` keys would be, then build the check.

    Raises :class:`ConfigError` with the user's messages; a ``ValueError`` from the
    constructor (its own cross-option validation) is reported the same way.
    """
    doc = _document(environ)
    section = Section(doc, ("checks", name), _toml_like(dict(options or {})))
    from monagent.options import validate_options

    values = validate_options(check_class, check_class.__name__, section, section.keys())
    if doc.problems:
        raise ConfigError(doc.problems)
    try:
        return check_class(**values)
    except ValueError as exc:
        raise ConfigError([Problem(doc.file, None, f"checks.{name}", str(exc))]) from None


ThresholdSpec = Union[Threshold, Mapping[str, Any]]


def _as_table(threshold: ThresholdSpec) -> Dict[str, Any]:
    if not isinstance(threshold, Threshold):
        return dict(_toml_like(threshold))
    levels = ("warning", "critical", "warning_clear", "critical_clear")
    table: Dict[str, Any] = {k: getattr(threshold, k) for k in levels if getattr(threshold, k) is not None}
    table["direction"] = threshold.direction.value
    return table


def resolve_thresholds(
    check_class: type, thresholds: Optional[Mapping[str, ThresholdSpec]] = None, *, name: str = "test"
) -> Dict[str, Threshold]:
    """The class's default thresholds overlaid with ``thresholds``: Threshold objects, or the
    ``{"warning": 85, "critical": 95}`` tables agent.toml has; both are validated like the config."""
    from monagent.config import parse_thresholds

    doc = _document(None)
    tables = {metric: _as_table(t) for metric, t in (thresholds or {}).items()}
    result = parse_thresholds(Section(doc, ("checks", name, "thresholds"), tables), getattr(check_class, "metrics", None))
    if doc.problems:
        raise ConfigError(doc.problems)
    return result


@record
class CheckReport:
    """What one run reported, and how monagent judges it (once, without hysteresis)."""

    results: Tuple[Result, ...]
    judged: Tuple[Judged, ...]
    thresholds: Mapping[str, Threshold]

    @property
    def status(self) -> Status:
        """The worst status of all results: what ``monagent check`` would exit with."""
        return worst(j.status for j in self.judged)

    @property
    def statuses(self) -> Dict[Tuple[str, str], Status]:
        """One status per alert key ``(subject, metric)``; an explicit verdict's metric is ``"status"``.

        Only metrics with a threshold (and a value) are alert keys, as in the agent.
        """
        keys: Dict[Tuple[str, str], Status] = {}
        for judged in self.judged:
            subject = judged.result.subject
            for verdict in judged.metrics:
                if verdict.threshold is not None and verdict.metric.value is not None:
                    keys[(subject, verdict.metric.name)] = verdict.status
            if judged.result.status is not None:
                keys[(subject, "status")] = judged.result.status
        return keys

    @property
    def summary(self) -> str:
        """One line per result: ``subject: summary`` (as ``monagent check`` lists them)."""
        return "\n".join(f"{j.result.subject}: {j.summary}" if j.result.subject else j.summary for j in self.judged)

    @property
    def occurrences(self) -> Tuple[Occurrence, ...]:
        return tuple(o for r in self.results for o in r.occurrences)

    def subjects(self) -> List[str]:
        return [r.subject for r in self.results]

    def result(self, subject: str = "") -> Result:
        for result in self.results:
            if result.subject == subject:
                return result
        raise KeyError(f'no result for subject "{subject}"; subjects: {self.subjects()}')

    def metric(self, name: str, subject: Optional[str] = None) -> Metric:
        """The metric ``name`` (of ``subject``, when several results report it)."""
        found = [m for r in self.results if subject is None or r.subject == subject for m in r.metrics if m.name == name]
        if len(found) != 1:
            where = f' of subject "{subject}"' if subject is not None else ""
            raise KeyError(f'{len(found)} metrics named "{name}"{where}' + ("; pass subject=" if len(found) > 1 else ""))
        return found[0]

    def value(self, name: str, subject: Optional[str] = None) -> Optional[float]:
        return self.metric(name, subject).value

    def status_of(self, metric: str = "status", subject: str = "") -> Status:
        """The status of one alert key (see :attr:`statuses`)."""
        try:
            return self.statuses[(subject, metric)]
        except KeyError:
            raise KeyError(f"no alert key ({subject!r}, {metric!r}); keys: {sorted(self.statuses)}") from None


def run_check(
    check: Union[type, Check],
    options: Optional[Mapping[str, Any]] = None,
    context: Optional[Any] = None,
    thresholds: Optional[Mapping[str, ThresholdSpec]] = None,
    *,
    name: str = "test",
) -> CheckReport:
    """Build (from a class) or reuse (an instance) a check, run it once, and judge the results.

    ``CheckError`` from ``run`` becomes an UNKNOWN result with its message, as in the agent;
    any other exception propagates, so your test shows the traceback.
    """
    if isinstance(check, type):
        instance = build_check(check, options, name=name)
        check_class: type = check
    else:
        if options:
            raise TypeError("options are for a check class; an instance was built already")
        instance, check_class = check, type(check)
    resolved = resolve_thresholds(check_class, thresholds, name=name)
    ctx = context if context is not None else FakeContext()
    try:
        results = normalise_results(instance.run(ctx))
    except (CheckError, StuckCall) as exc:
        results = (Result(status=Status.UNKNOWN, reason=exc.reason if isinstance(exc, CheckError) else str(exc)),)
    return CheckReport(results, judge_all(results, resolved), resolved)
