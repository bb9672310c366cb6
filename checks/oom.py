"""OOM kills: one occurrence per cycle in which the kernel's OOM killer fired.

The machine-wide count is ``oom_kill`` in ``/proc/vmstat``; a systemd service's count is
``oom_kill`` in ``memory.events`` of its cgroup (v2: ``<cgroup_root>/system.slice/*.service``,
which counts kills "by any kind of OOM killer", the global one included).  A kill in a
service's cgroup is reported under that service and not again machine-wide.  Where the
kernel log is readable (``/dev/kmsg`` read non-blocking, else the ``dmesg`` command) the
occurrence names the killed process and its memory from ``Out of memory: Killed process
1234 (java) total-vm:..., anon-rss:...`` and the ``oom-kill:`` line.

The first run of an instance only records the counters (a restart does not re-announce
kills it cannot tell apart); occurrence ids are ``boot id + counter``, unique per kill.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, ClassVar, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

if TYPE_CHECKING:
    import logging

from monagent.api import Check, Context, Fact, Formatter, MetricSpec, Occurrence, Result, Status


def log() -> logging.Logger:
    """This module's logger; ``logging`` is imported at the first line logged (start-up, #17)."""
    import logging

    return logging.getLogger(__name__)


MAX_KILLS_SHOWN = 5
# Patterns as text: compiled at first use (re's own cache), not at every start-up (#17).
_KILLED = (
    r"Killed process (?P<pid>\d+) \((?P<comm>.*?)\) total-vm:(?P<total_vm>\d+)kB, anon-rss:(?P<anon_rss>\d+)kB, "
    r"file-rss:(?P<file_rss>\d+)kB, shmem-rss:(?P<shmem_rss>\d+)kB(?:,? UID:(?P<uid>\d+))?"
    r"(?: pgtables:(?P<pgtables>\d+)kB)?(?: oom_score_adj:(?P<adj>-?\d+))?"
)
_OOM_KILL_LINE = r"oom-kill:(?P<fields>\S+)"
_DMESG_PREFIX = r"^(?:<\d+>)?(?:\[\s*\d+\.\d+\]\s?)?(?:\[\s*[TC]\d+\]\s?)?"


class Kill(NamedTuple):  # a named tuple: a dataclass costs ~1 ms of every start-up (#17)
    """One "Killed process" record of the kernel log."""

    seq: int
    pid: str
    comm: str
    anon_rss_kb: int
    total_vm_kb: int
    file_rss_kb: int
    shmem_rss_kb: int
    uid: str = ""
    oom_score_adj: str = ""
    memcg: str = ""  # task_memcg of the matching oom-kill: line (kernel >= 4.19)
    constraint: str = ""
    line: str = ""


class OomCheck(Check):
    """Report each cycle in which the OOM killer fired, machine-wide and per systemd service."""

    interval = 30.0
    timeout = 20.0
    non_blocking = True  # /proc/vmstat and cgroup counters; dmesg (10 s bound) only after a kill
    metrics: ClassVar[Optional[Mapping[str, MetricSpec]]] = {}
    texts: ClassVar[Mapping[str, Mapping[str, str]]] = {
        "oom.killed": {
            "en": "OOM killer killed {comm} (pid {pid}), anon-rss {rss:bytes}",
            "zh": "OOM killer 终止了进程 {comm}（pid {pid}），其匿名内存 {rss:bytes}",
        },
        "oom.killed_many": {
            "en": "OOM killer killed {comm} (pid {pid}), anon-rss {rss:bytes}; {n} kills in all",
            "zh": "OOM killer 终止了进程 {comm}（pid {pid}），其匿名内存 {rss:bytes}；共终止 {n} 次",
        },
        "oom.fired": {
            "en": "OOM killer fired {n} time{n:s} (kernel log not readable)",
            "zh": "OOM killer 触发了 {n} 次（内核日志不可读，不知终止了哪个进程）",
        },
        "oom.in_service": {"en": "{service}: {what}", "zh": "{service}：{what}"},
        "oom.since_boot": {"en": "{n} OOM kill{n:s} since boot", "zh": "开机以来 OOM killer 共终止进程 {n} 次"},
        "oom.no_counter": {
            "en": "{path} has no oom_kill counter (kernel older than 4.13?)",
            "zh": "{path} 中没有 oom_kill 计数（内核早于 4.13？）",
        },
        "fact.count": {"en": "Count", "zh": "次数"},
        "fact.total_since_boot": {"en": "Since boot", "zh": "开机以来"},
        "fact.process": {"en": "Process", "zh": "进程"},
        "fact.pid": {"en": "pid", "zh": "pid"},
        "fact.anon_rss": {"en": "anon-rss", "zh": "匿名内存"},
        "fact.total_vm": {"en": "total-vm", "zh": "虚拟内存"},
        "fact.file_rss": {"en": "file-rss", "zh": "文件页内存"},
        "fact.shmem_rss": {"en": "shmem-rss", "zh": "共享内存"},
        "fact.uid": {"en": "UID", "zh": "UID"},
        "fact.oom_score_adj": {"en": "oom_score_adj", "zh": "oom_score_adj"},
        "fact.cgroup": {"en": "cgroup", "zh": "cgroup"},
        "fact.constraint": {"en": "Constraint", "zh": "约束"},
        "fact.service": {"en": "Service", "zh": "服务"},
        "fact.excerpt": {"en": "Log excerpt", "zh": "日志摘录"},
    }

    def __init__(
        self,
        *,
        proc_root: str = "/proc",
        cgroup_root: str = "/sys/fs/cgroup",
        kernel_log: str = "/dev/kmsg",
        dmesg_command: Sequence[str] = ("dmesg",),
        services_glob: str = "system.slice/*.service",
    ) -> None:
        self.proc_root = proc_root
        self.cgroup_root = cgroup_root
        self.kernel_log = kernel_log
        self.dmesg_command = tuple(dmesg_command)
        self.services_glob = services_glob
        self._system: Optional[int] = None
        self._services: Optional[Dict[str, Tuple[int, int]]] = None  # service -> (cgroup inode, oom_kill)
        self._last_seq = -1

    def run(self, ctx: Context) -> List[Result]:
        total = self._vmstat_oom_kill()
        if total is None:
            return [
                Result(
                    subject="system",
                    status=Status.UNKNOWN,
                    reason=self.text("oom.no_counter", path=f"{self.proc_root}/vmstat"),
                )
            ]
        first = self._system is None
        # Every OOM kill, a cgroup's included, counts in vmstat's total: while it stands still no service
        # counter moved, and the ~1 file per service is not read (a cgroup recreated meanwhile restarts
        # at zero, which the inode comparison handles when the counters are read next).
        services = self._service_counters() if first or total != self._system else (self._services or {})
        previous_total = self._system if self._system is not None else total
        previous_services = self._services if self._services is not None else services
        self._system, self._services = total, services
        reason = self.text("oom.since_boot", n=total)
        if first:
            return [Result(subject="system", status=Status.OK, reason=reason)]
        service_deltas = _service_deltas(previous_services, services)
        system_delta = max(0, total - previous_total - sum(d for d, _ in service_deltas.values()))
        if not system_delta and not service_deltas:
            return [Result(subject="system", status=Status.OK, reason=reason)]
        kills = self._new_kills()
        boot_id = ctx.boot_id()
        results = [
            Result(
                subject="system",
                status=Status.OK,
                reason=reason,
                occurrences=tuple(
                    [_occurrence(f"oom:{boot_id}:{total}", system_delta, total, _unclaimed(kills, service_deltas), now=ctx.now)]
                    if system_delta
                    else []
                ),
            )
        ]
        for service, (delta, ino) in sorted(service_deltas.items()):
            mine = [k for k in kills if _memcg_service(k.memcg) == service]
            occ = _occurrence(
                f"oom:{boot_id}:{service}:{ino}:{services[service][1]}",
                delta,
                services[service][1],
                mine,
                now=ctx.now,
                service=service,
            )
            results.append(Result(subject=service, occurrences=(occ,)))
        return results

    def _vmstat_oom_kill(self) -> Optional[int]:
        try:
            with open(os.path.join(self.proc_root, "vmstat"), "rb") as fh:
                text = b"\n" + fh.read()
        except OSError as exc:
            log().warning("cannot read %s/vmstat: %s", self.proc_root, exc.strerror or exc)
            return None
        at = text.find(b"\noom_kill ")
        if at < 0:
            return None
        end = text.find(b"\n", at + 1)
        try:
            return int(text[at + 10 : end if end > 0 else None])
        except ValueError:
            return None

    def _service_counters(self) -> Dict[str, Tuple[int, int]]:
        import glob  # here, not at import: loading the class (monagent validate) stays cheap

        counters: Dict[str, Tuple[int, int]] = {}
        for path in glob.glob(os.path.join(glob.escape(self.cgroup_root), self.services_glob, "memory.events")):
            directory = os.path.dirname(path)
            try:
                ino = os.stat(directory).st_ino
                with open(path, encoding="ascii") as fh:
                    events = dict(line.split() for line in fh if len(line.split()) == 2)
                counters[os.path.basename(directory)] = (ino, int(events.get("oom_kill", "0")))
            except (OSError, ValueError):
                continue  # the service stopped meanwhile, or the file is not readable
        return counters

    def _new_kills(self) -> List[Kill]:
        records = _read_kmsg(self.kernel_log) if self.kernel_log else None
        if records is None and self.dmesg_command:
            records = _run_dmesg(self.dmesg_command)
        if records is None:
            return []
        kills = [k for k in parse_kills(records) if k.seq < 0 or k.seq > self._last_seq]  # dmesg has no seq
        if kills and kills[-1].seq >= 0:
            self._last_seq = kills[-1].seq
        return kills


def _service_deltas(before: Mapping[str, Tuple[int, int]], now: Mapping[str, Tuple[int, int]]) -> Dict[str, Tuple[int, int]]:
    """service -> (kills since the last run, cgroup inode); a recreated cgroup counts from zero."""
    deltas = {}
    for service, (ino, count) in now.items():
        old_ino, old_count = before.get(service, (ino, 0))
        delta = count - old_count if old_ino == ino else count
        if delta > 0:
            deltas[service] = (delta, ino)
    return deltas


def _unclaimed(kills: Sequence[Kill], services: Mapping[str, Tuple[int, int]]) -> List[Kill]:
    return [k for k in kills if _memcg_service(k.memcg) not in services]


def _memcg_service(memcg: str) -> str:
    return memcg.rstrip("/").rsplit("/", 1)[-1] if memcg.endswith(".service") else ""


def _occurrence(occ_id: str, delta: int, total: int, kills: Sequence[Kill], *, now: float, service: str = "") -> Occurrence:
    shown = list(kills)[-min(delta, MAX_KILLS_SHOWN) :] if kills else []
    if shown:
        last = shown[-1]
        args = {"comm": last.comm, "pid": last.pid, "rss": last.anon_rss_kb * 1024, "n": delta}
        reason = OomCheck.text("oom.killed_many" if delta > 1 else "oom.killed", **args)
    else:
        reason = OomCheck.text("oom.fired", n=delta)
    if service:
        reason = OomCheck.text("oom.in_service", service=service, what=reason)
    summary = Formatter().text(reason)
    facts: Dict[str, Fact] = {"count": delta, "total_since_boot": total}
    if service:
        facts["service"] = service
    if shown:
        facts.update(_kill_facts(shown[-1]))
        facts["excerpt"] = "\n".join(k.line for k in shown)
    return Occurrence(id=occ_id, summary=summary, severity=Status.CRITICAL, facts=facts, time=now, reason=reason)


def _kill_facts(kill: Kill) -> Dict[str, Fact]:
    facts: Dict[str, Fact] = {
        "process": kill.comm,
        "pid": kill.pid,
        "anon_rss": kill.anon_rss_kb * 1024,
        "total_vm": kill.total_vm_kb * 1024,
        "file_rss": kill.file_rss_kb * 1024,
        "shmem_rss": kill.shmem_rss_kb * 1024,
        "uid": kill.uid,
        "oom_score_adj": kill.oom_score_adj,
        "cgroup": kill.memcg,
        "constraint": kill.constraint,
    }
    return {k: v for k, v in facts.items() if v != ""}


def parse_kills(records: Sequence[Tuple[int, str]]) -> List[Kill]:
    """Kill records from (sequence number, message) pairs, each with its preceding oom-kill: fields."""
    kills = []
    fields: Dict[str, str] = {}
    for seq, text in records:
        marker = re.search(_OOM_KILL_LINE, text)
        if marker:
            fields = dict(part.split("=", 1) for part in marker.group("fields").split(",") if "=" in part)
            continue
        match = re.search(_KILLED, text)
        if not match:
            continue
        same = fields.get("pid") == match.group("pid")
        kills.append(
            Kill(
                seq=seq,
                pid=match.group("pid"),
                comm=match.group("comm"),
                anon_rss_kb=int(match.group("anon_rss")),
                total_vm_kb=int(match.group("total_vm")),
                file_rss_kb=int(match.group("file_rss")),
                shmem_rss_kb=int(match.group("shmem_rss")),
                uid=match.group("uid") or "",
                oom_score_adj=match.group("adj") or "",
                memcg=fields.get("task_memcg", "") if same else "",
                constraint=fields.get("constraint", "") if same else "",
                line=text[match.start() :].strip(),
            )
        )
        fields = {}
    return kills


def _read_kmsg(path: str) -> Optional[List[Tuple[int, str]]]:
    """Records of /dev/kmsg (``prio,seq,usec,flags;message``), read without blocking; None if unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        log().debug("cannot open %s: %s", path, exc.strerror)
        return None
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(fd, 16384)
            except BlockingIOError:
                break  # no more records
            except BrokenPipeError:
                continue  # records were overwritten while reading: go on with the next one
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    records = []
    for line in b"".join(chunks).decode("utf-8", errors="replace").splitlines():
        header, sep, message = line.partition(";")
        parts = header.split(",")
        if sep and len(parts) >= 3 and parts[1].isdigit():
            records.append((int(parts[1]), message))
    return records


def _run_dmesg(command: Sequence[str]) -> Optional[List[Tuple[int, str]]]:
    """``dmesg`` output lines (no sequence numbers: -1); None when it cannot run."""
    import subprocess

    try:
        done = subprocess.run(list(command), capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log().debug("cannot run %s: %s", command[0], exc)
        return None
    if done.returncode != 0:
        return None
    lines = done.stdout.decode("utf-8", errors="replace").splitlines()
    return [(-1, re.sub(_DMESG_PREFIX, "", line)) for line in lines]
