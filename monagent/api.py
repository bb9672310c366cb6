"""The public plugin API: everything a check author imports.

A check is a class derived from :class:`Check`. Its options are keyword-only
constructor arguments with type annotations and defaults; the loader validates
the ``[checks.NAME]`` table against that signature before the check is built.
``run(ctx)`` reads the machine through the per-cycle :class:`Context` and
returns one or more :class:`Result` values.  The engine, not the check,
compares metric values with thresholds.

Example::

    from monagent.api import Check, Context, Metric, MetricSpec, Result

    class QueueDepth(Check):
        metrics = {"depth": MetricSpec(unit="", warning=100, critical=1000)}

        def __init__(self, *, path: str = "/var/spool/app") -> None:
            self.path = path

        def run(self, ctx: Context) -> Result:
            return Result(metrics=(Metric("depth", len(os.listdir(self.path))),))
"""

from __future__ import annotations

import enum
from dataclasses import InitVar, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, Iterable, Mapping, Optional, Protocol, Sequence, TypeVar, Union

from monagent import catalogue
from monagent.formatting import Formatter, Text, joined, plain
from monagent.records import config_record, record

Fact = Union[str, int, float, bool]
"""A typed fact of a result or an occurrence: sizes in bytes and times in epoch seconds as numbers,
so every output shows them in its own language and units."""

__all__ = [
    "LEVELS",
    "SEVERITIES",
    "Check",
    "CheckError",
    "Context",
    "Direction",
    "DiskUsage",
    "Fact",
    "Formatter",
    "Metric",
    "MetricSpec",
    "Mount",
    "Occurrence",
    "ProcessInfo",
    "Result",
    "Severity",
    "Status",
    "StuckCall",
    "Text",
    "Threshold",
    "contain_process_group",
    "joined",
    "plain",
    "release_process_group",
    "worst",
]


class Status(enum.IntEnum):
    """Check status, numbered as Nagios numbers its exit codes; named by the one table, :data:`SEVERITIES`."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3

    @property
    def rank(self) -> int:
        """Order for "worst of": CRITICAL > UNKNOWN > WARNING > OK."""
        return SEVERITIES[self].rank

    @property
    def label(self) -> str:
        """The status's name wherever a program or a person reads it: ``unknown``."""
        return SEVERITIES[self].label

    @property
    def level(self) -> str:
        """The notification level routes, mentions and colours go by: ``critical``, ``warning`` or ``info``."""
        return SEVERITIES[self].level

    @property
    def word(self) -> str:
        """The catalogue key of the word a notification of this severity shows (badge, console line)."""
        return SEVERITIES[self].word

    @classmethod
    def from_label(cls, label: str) -> Status:
        """The status named ``label`` (``"unknown"``); raises KeyError."""
        return _BY_LABEL[label]


@config_record
class Severity:
    """How one status is named and ranked (docs/design/decisions.md, "Severity vocabulary").

    ``label`` names the status: Alertmanager labels, ``monagent status``, matchers, Nagios
    ``timeout_state``, the catalogue's key for the status word (:func:`monagent.wording.severity_word`);
    the Nagios form is its upper case (the enum's name). ``level`` is one of :data:`LEVELS`, the
    three classes a receiver routes, mentions and colours by (and the webhook's ``severity``);
    UNKNOWN is at the ``warning`` level (a check that cannot tell is worth a warning, never less:
    its rank is above WARNING). ``word`` is the catalogue key of the word a notification shows
    (the chat badge, the console line): the label, except that an OK notification (a notice such
    as "agent restarted") reads as ``info``. UNKNOWN reads as UNKNOWN everywhere."""

    label: str
    level: str
    word: str
    rank: int


LEVELS = ("critical", "warning", "info")
"""The notification levels, most urgent first (``severities`` of a route, DingTalk ``mention``)."""

SEVERITIES: Mapping[Status, Severity] = {
    Status.OK: Severity("ok", "info", "info", 0),
    Status.WARNING: Severity("warning", "warning", "warning", 1),
    Status.UNKNOWN: Severity("unknown", "warning", "unknown", 2),
    Status.CRITICAL: Severity("critical", "critical", "critical", 3),
}
"""The one severity vocabulary: every place that names a status reads it here."""

_BY_LABEL = {severity.label: status for status, severity in SEVERITIES.items()}


def worst(statuses: Iterable[Status]) -> Status:
    """The worst status in the order CRITICAL > UNKNOWN > WARNING > OK (OK when empty)."""
    result = Status.OK
    for status in statuses:
        if status.rank > result.rank:
            result = status
    return result


class Direction(str, enum.Enum):
    """Which way a metric gets worse."""

    ABOVE = "above"
    BELOW = "below"


@config_record
class Threshold:
    """Warning and critical levels of one metric, each with an optional clear value.

    With ``direction=ABOVE`` a value at or above ``critical`` is CRITICAL and it
    clears only at or below ``critical_clear`` (hysteresis). With ``BELOW`` a value
    strictly below ``critical`` is CRITICAL and it clears at or above ``critical_clear``.
    A level left as None is not evaluated.
    """

    warning: Optional[float] = None
    critical: Optional[float] = None
    warning_clear: Optional[float] = None
    critical_clear: Optional[float] = None
    direction: Direction = Direction.ABOVE

    def classify(self, value: float) -> Status:
        """The status of ``value`` without hysteresis (one-shot ``monagent check``)."""
        if self.critical is not None and self._reaches(value, self.critical):
            return Status.CRITICAL
        if self.warning is not None and self._reaches(value, self.warning):
            return Status.WARNING
        return Status.OK

    def latch(self, value: float, previous: Status) -> Status:
        """The status of ``value`` given the previous latched level (Schmitt trigger)."""
        if self.critical is not None:
            if self._reaches(value, self.critical):
                return Status.CRITICAL
            off = self.critical if self.critical_clear is None else self.critical_clear
            if previous == Status.CRITICAL and self._beyond(value, off):
                return Status.CRITICAL
        if self.warning is not None:
            if self._reaches(value, self.warning):
                return Status.WARNING
            off = self.warning if self.warning_clear is None else self.warning_clear
            if previous in (Status.WARNING, Status.CRITICAL) and self._beyond(value, off):
                return Status.WARNING
        return Status.OK

    def limit_for(self, status: Status) -> Optional[float]:
        """The "on" value of a level, for messages ("93% (>= 90)")."""
        if status == Status.CRITICAL:
            return self.critical
        if status == Status.WARNING:
            return self.warning
        return None

    @property
    def operator(self) -> str:
        return ">=" if self.direction == Direction.ABOVE else "<"

    def _reaches(self, value: float, limit: float) -> bool:
        # "above" includes the limit (used 95% with critical = 95 is critical); "below" is strict, so
        # count = { critical = 1, direction = "below" } means "fewer than 1 running" (docs/design/decisions.md section 1).
        return value >= limit if self.direction == Direction.ABOVE else value < limit

    def _beyond(self, value: float, off: float) -> bool:
        return value > off if self.direction == Direction.ABOVE else value < off


@config_record
class MetricSpec:
    """What a check type declares about one of its metrics.

    ``warning``/``critical`` are the default thresholds (None: no default);
    ``threshold_min``/``threshold_max`` bound what a configured threshold may be (not the
    metric's value range: that is :attr:`Metric.minimum`/:attr:`Metric.maximum`).
    ``minimum=``/``maximum=`` are accepted as the former names of the two bounds.
    """

    unit: str = ""
    description: str = ""
    warning: Optional[float] = None
    critical: Optional[float] = None
    warning_clear: Optional[float] = None
    critical_clear: Optional[float] = None
    direction: Direction = Direction.ABOVE
    threshold_min: Optional[float] = None
    threshold_max: Optional[float] = None
    minimum: InitVar[Optional[float]] = None
    maximum: InitVar[Optional[float]] = None

    def __post_init__(self, minimum: Optional[float], maximum: Optional[float]) -> None:
        if minimum is not None and self.threshold_min is None:
            object.__setattr__(self, "threshold_min", minimum)
        if maximum is not None and self.threshold_max is None:
            object.__setattr__(self, "threshold_max", maximum)

    def default_threshold(self) -> Optional[Threshold]:
        if self.warning is None and self.critical is None:
            return None
        return Threshold(self.warning, self.critical, self.warning_clear, self.critical_clear, self.direction)


@record
class Metric:
    """One measured value. ``value`` None means "no data yet" (a warming-up rate): no alert."""

    name: str
    value: Optional[float]
    unit: str = ""
    minimum: Optional[float] = None
    maximum: Optional[float] = None


@record
class Occurrence:
    """Something that happened once (a crash dump, an OOM kill): one event per ``id``.

    ``revision`` changes when the same occurrence gets news worth a follow-up
    (a failed dump that later completes). ``announce_on_first_run`` marks an
    occurrence that is news even when the agent has no memory yet (the crash
    that caused this boot); the others are summarised on a first run.
    """

    id: str
    summary: str
    severity: Status = Status.CRITICAL
    revision: str = ""
    facts: Mapping[str, Fact] = field(default_factory=dict)
    details: str = ""
    time: Optional[float] = None
    announce_on_first_run: bool = False
    reason: Union[str, Text] = ""  # the summary by message id, for messages in other languages


@record
class Result:
    """What a check reports about one subject (a mount, a process rule, a dump root).

    Any of: ``metrics`` (judged by the engine against thresholds), an explicit
    ``status`` with its ``reason`` (a verdict), ``occurrences``.
    ``discovered`` marks a subject the check found by itself (an auto-discovered
    mount): when it stops being reported its alerts are retired, not fired.
    ``facts`` are short extra lines for messages (``{"time_to_full": "~4h"}``).
    """

    subject: str = ""
    metrics: Sequence[Metric] = ()
    status: Optional[Status] = None
    reason: Union[str, Text] = ""
    occurrences: Sequence[Occurrence] = ()
    details: str = ""
    facts: Mapping[str, Fact] = field(default_factory=dict)
    discovered: bool = False


@record
class ProcessInfo:
    """One row of the process table, read once per cycle; the command line is ``ctx.cmdline(pid)``.

    ``uid`` is the real user id (-1 when the process was gone before it could be read).
    ``cpu_seconds`` (user + system) and ``rss_bytes`` come from
    the same read of ``/proc/PID/stat``; ``started`` (clock ticks after boot) tells a
    reused pid apart from the process that had it before.
    """

    pid: int
    ppid: int
    comm: str
    state: str
    uid: int
    cpu_seconds: float = 0.0
    rss_bytes: int = 0
    started: int = 0


@record
class Mount:
    """One line of /proc/1/mountinfo, already unescaped."""

    mount_id: int
    parent_id: int
    device: str  # "major:minor"
    root: str
    mountpoint: str
    options: Sequence[str]
    fstype: str
    source: str
    super_options: Sequence[str]

    @property
    def read_only(self) -> bool:
        return "ro" in self.options or "ro" in self.super_options


@record
class DiskUsage:
    """statvfs of a mount, in bytes and inodes; ``used_percent`` is computed the way df does."""

    total: int
    used: int
    free: int  # available to unprivileged users
    inodes_total: int
    inodes_used: int
    inodes_free: int
    read_only: bool

    @property
    def used_percent(self) -> float:
        denominator = self.used + self.free
        return 100.0 * self.used / denominator if denominator else 0.0

    @property
    def inodes_percent(self) -> float:
        return 100.0 * self.inodes_used / self.inodes_total if self.inodes_total else 0.0


class StuckCall(Exception):
    """A blocking call (statvfs on a dead NFS mount) did not return within its hard timeout.

    ``since`` (epoch seconds) is set when an earlier call is still stuck and this one was refused
    at once: a check can say since when in its own words."""

    def __init__(self, message: str = "", since: Optional[float] = None) -> None:
        super().__init__(message)
        self.since = since


class CheckError(Exception):
    """Raised by a check for a condition it wants reported as UNKNOWN with this reason only.

    The reason is free text or, better, a :class:`Text` (``raise CheckError(self.text("spool.gone",
    path=p))``), which every output shows in its language; ``str()`` of the error is its English."""

    def __init__(self, reason: Union[str, Text] = "") -> None:
        self.reason = reason
        super().__init__(reason if isinstance(reason, str) else Formatter().text(reason))


T = TypeVar("T")


class Context(Protocol):
    """Facts gathered once per cycle and shared by every check, plus blocking-call helpers.

    Checks read the machine through this, so tests fake it (see ``monagent.testing``).
    """

    hostname: str
    now: float  # wall clock, seconds since the epoch
    monotonic: float
    proc_root: Path
    # True under ``monagent run``: the instance runs again and again, so it may keep a child process or an
    # open file between runs (release them in ``close()``). False for one run (``monagent check``, a test).
    long_lived: bool

    def processes(self) -> Sequence[ProcessInfo]: ...

    def cmdline(self, pid: int) -> Sequence[str]: ...

    def mounts(self) -> Sequence[Mount]: ...

    def disk_usage(self, path: str, timeout: float = 5.0) -> DiskUsage:
        """statvfs with a hard timeout on network and FUSE filesystems (in-process on local ones);
        raises :class:`StuckCall` for a hung mount."""
        ...

    def run_blocking(
        self, func: Callable[..., T], *args: Any, timeout: float = 10.0, path: Union[str, Sequence[str], None] = None
    ) -> T:
        """Run a picklable top-level function in a worker process with a hard timeout.

        Raises :class:`StuckCall` when it does not return in time (the worker is killed). With
        ``path`` (the file or directory the function reads, or a sequence of them), the call runs
        in-process when every such path is on a local filesystem, where it cannot hang on a server;
        without it the call is always isolated in a worker.
        """
        ...

    def cpu_times(self) -> Any:
        """psutil.cpu_times() of this cycle (shared by all checks)."""
        ...

    def is_local(self, path: str) -> bool:
        """Every step of ``path`` is on a local filesystem (not NFS, CIFS, FUSE, ...): what ``run_blocking(path=)``
        decides by, for a check that sets ``non_blocking`` per instance from where its paths are."""
        ...

    def boot_id(self) -> str: ...

    def boot_time(self) -> float: ...


OptionValue = Union[str, int, float, bool, Sequence[str], Mapping[str, Any], None]


class Check:
    """Base class of every check type, built-in or user-written.

    Class attributes a subclass may set:

    - ``interval``, ``timeout``: defaults in seconds, overridable per instance;
    - ``metrics``: name -> :class:`MetricSpec`; thresholds in the config may only
      name these (None: any name, for checks whose metrics are discovered, e.g. Nagios perfdata);
    - ``run_at_start``: run at once at agent start instead of at the agent's first (splayed) slot;
    - ``warmup``: seconds between a baseline run and the reported one in ``monagent check``,
      for checks that measure over an interval (CPU percent, rates); 0 (default): one run;
    - ``non_blocking``: runs take milliseconds and do not block (reads of /proc and of local files,
      no network; a bounded subprocess only on a rare path): such checks share one thread and run one
      after another, which costs less CPU than a thread each (threads that run at once contend for
      the interpreter). One that hangs all the same is abandoned and the others go on. Default False:
      a thread of its own. An instance may set ``self.non_blocking`` from what it found (the built-in
      disk check does: true while every filesystem it watches is local); the scheduler reads it at
      each start. (``cheap``, its former name, is still read.)
    - ``texts``: the check's own texts, message id -> {language: template} (``{"spool.stuck": {"en":
      "{n} stuck for {age:duration}", "zh": "积压 {n} 条，已 {age:duration}"}}``); ``self.text(id, n=3,
      age=600)`` makes a reason that every output renders in its language (monagent.formatting), and
      ``fact.NAME`` ids label the facts. Defining the class registers them (monagent.catalogue), so
      ids should start with the check's name; an id of monagent's own is refused.

    Options are keyword-only ``__init__`` arguments with annotations and defaults;
    an argument without a default is required.
    """

    interval: ClassVar[float] = 60.0
    timeout: ClassVar[float] = 30.0
    metrics: ClassVar[Optional[Mapping[str, MetricSpec]]] = {}
    run_at_start: ClassVar[bool] = False
    warmup: ClassVar[float] = 0.0
    non_blocking: bool = False  # a class default an instance may change (see above)
    texts: ClassVar[Mapping[str, Mapping[str, str]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "cheap" in cls.__dict__:  # the attribute's name before 0.2; plugins written for it keep working
            cls.non_blocking = bool(cls.__dict__["cheap"])
        own = cls.__dict__.get("texts")
        if own:
            catalogue.register(_checked_texts(cls.__name__, own))

    @classmethod
    def text(cls, message_id: str, **args: Any) -> Text:
        """A reason by id: the class's own templates (``texts[message_id]``, language -> template),
        or the catalogue's for built-in ids. Show it with :meth:`Formatter.text`."""
        own: Dict[str, str] = dict(cls.texts.get(message_id) or catalogue.registered(message_id))
        return Text(message_id, args, own, fallback="")

    def run(self, ctx: Context) -> Union[Result, Iterable[Result]]:
        raise NotImplementedError

    def close(self) -> None:
        """Called when the instance is removed from the config or the agent stops."""


def _checked_texts(owner: str, texts: Any) -> Mapping[str, Mapping[str, str]]:
    """``texts`` of a check class, refused with a clear message when it is not id -> language -> template."""
    if not isinstance(texts, Mapping):
        raise TypeError(f"{owner}.texts must be a dict of message id -> {{language: template}}")
    for message_id, by_language in texts.items():
        if not isinstance(message_id, str) or not isinstance(by_language, Mapping):
            raise TypeError(f"{owner}.texts[{message_id!r}] must be a dict of language -> template")
        for language, template in by_language.items():
            if language not in catalogue.LANGUAGES or not isinstance(template, str):
                known = ", ".join(sorted(catalogue.LANGUAGES))
                raise TypeError(f"{owner}.texts[{message_id!r}][{language!r}]: a template string per language ({known})")
        if "en" not in by_language:
            raise TypeError(f"{owner}.texts[{message_id!r}] has no English text (the fallback of every language)")
    return texts


def contain_process_group(pgid: int) -> None:
    """Make the process group ``pgid`` die with the agent, however the agent dies (SIGKILL included).

    For a check that starts a child in a session of its own (``subprocess.Popen(...,
    start_new_session=True)``: its pid is the group's id): call this right after the start, and
    :func:`release_process_group` once the group is killed and the child reaped. The running agent's
    warden (``monagent.warden``) then SIGKILLs the group, grandchildren included, if the agent ends
    without stopping it. Outside ``monagent run`` both calls do nothing."""
    from monagent import warden

    warden.watch(pgid)


def release_process_group(pgid: int) -> None:
    """The group given to :func:`contain_process_group` is gone: the warden forgets it."""
    from monagent import warden

    warden.release(pgid)
