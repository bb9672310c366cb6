"""Rendering a batch of items as one DingTalk markdown message (title + text).

The title is what the phone shows: ``[FIRING:2] web01 disk /var 93%``, ``[RESOLVED] web01 ...``
(Chinese labels by default: ``[告警:2]``, ``[已恢复]``). The text repeats it as a heading, then
one block per item in priority order until the body budget is spent; the rest is summed up
in a ``+N more (W warning, R resolved)`` line. Everything that comes from the machine goes
through :func:`escape`, so a file or process name cannot break or forge the markdown.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Callable, List, Mapping, Optional, Sequence, Tuple

from monagent.api import Status
from monagent.confread import format_duration
from monagent.events import Event, EventKind
from monagent.formatting import load_zone
from monagent.notify.coalesce import Batch, HeldReason, Item

COLOURS = {"critical": "#FF0000", "warning": "#FF9900", "resolved": "#008000", "info": "#1E90FF"}
SPARKS = "▁▂▃▄▅▆▇█"
EXCERPT_LINES = 15
FIELD_CHARS = 300
HEADLINE_CHARS = 120

LABELS = {
    "en": {
        "tag.firing": "FIRING",
        "tag.resolved": "RESOLVED",
        "tag.digest": "DIGEST",
        "tag.notice": "NOTICE",
        "tag.flapping": "FLAPPING",
        "tag.crash": "kernel crash",
        "tag.test": "TEST",
        "test_crash": "test crash",
        "critical": "CRITICAL",
        "warning": "WARNING",
        "info": "INFO",
        "resolved": "RESOLVED",
        "firing": "firing",
        "escalated": "escalated",
        "deescalated": "de-escalated",
        "reminder": "still firing",
        "occurrence": "event",
        "flap_start": "flapping started",
        "flap_end": "flapping ended",
        "notice": "notice",
        "host": "Host",
        "check": "Check",
        "subject": "Subject",
        "metric": "Metric",
        "value": "Value",
        "threshold": "threshold",
        "since": "Since",
        "resolved_at": "Resolved at",
        "duration": "Duration",
        "time": "Time",
        "trend": "Trend",
        "time_to_full": "Full in",
        "growth": "Growth",
        "note": "Note",
        "summary": "Summary",
        "details": "Details",
        "was": "Severity was",
        "reminders": "reminders",
        "reason": "Reason",
        "where": "Where",
        "process": "Process",
        "kernel": "Kernel",
        "running": "running",
        "taint": "Taint",
        "dump": "Dump",
        "status": "Status",
        "free": "Free space",
        "excerpt": "Log excerpt",
        "via": "dump on",
        "capture_time": "Captured",
        "capture_clock": "capture-kernel clock",
        "crash_time": "Crash time",
        "panic": "Panic",
        "hardware": "Hardware",
        "apport": "Apport report",
        "flattened": "run makedumpfile -R before crash",
        "more": "+{n} more ({parts})",
        "more.critical": "{n} critical",
        "more.warning": "{n} warning",
        "more.resolved": "{n} resolved",
        "dropped": "{n} earlier events were dropped (outbox bound reached or rejected by the receiver)",
        "held.rate_limit": "held back by the rate limit",
        "held.lockout": "held back by a rate-limit lockout",
        "held.unavailable": "held back while the receiver was unreachable",
        "digest.intro": "{count} events since {since}, {why}.",
        "digest.cancelled": "Fired and resolved in between (not listed): {n}.",
        "count.firing": "{n} firing",
        "count.resolved": "{n} resolved",
        "count.other": "{n} other",
        "after": "after",
        "test.title": "monagent test message",
        "test.body": "If you can read this, the robot {robot} is set up correctly.",
    },
    "zh": {
        "tag.firing": "告警",
        "tag.resolved": "已恢复",
        "tag.digest": "汇总",
        "tag.notice": "通知",
        "tag.flapping": "抖动",
        "tag.crash": "内核崩溃",
        "tag.test": "测试",
        "test_crash": "测试触发",
        "critical": "严重",
        "warning": "警告",
        "info": "信息",
        "resolved": "已恢复",
        "firing": "告警",
        "escalated": "告警升级",
        "deescalated": "告警降级",
        "reminder": "告警持续",
        "occurrence": "事件",
        "flap_start": "状态抖动",
        "flap_end": "抖动结束",
        "notice": "通知",
        "host": "主机",
        "check": "检查",
        "subject": "对象",
        "metric": "指标",
        "value": "当前值",
        "threshold": "阈值",
        "since": "开始时间",
        "resolved_at": "恢复时间",
        "duration": "持续时间",
        "time": "时间",
        "trend": "趋势",
        "time_to_full": "预计写满",
        "growth": "增长速度",
        "note": "备注",
        "summary": "说明",
        "details": "详情",
        "was": "原级别",
        "reminders": "次提醒",
        "reason": "原因",
        "where": "位置",
        "process": "进程",
        "kernel": "内核",
        "running": "当前运行",
        "taint": "污染标记",
        "dump": "转储",
        "status": "完整性",
        "free": "剩余空间",
        "excerpt": "日志摘录",
        "via": "转储于",
        "capture_time": "捕获时间",
        "capture_clock": "捕获内核时钟",
        "crash_time": "崩溃时间",
        "panic": "Panic",
        "hardware": "硬件",
        "apport": "apport 报告",
        "flattened": "需先 makedumpfile -R 再用 crash 分析",
        "more": "+{n} 条未列出（{parts}）",
        "more.critical": "严重 {n}",
        "more.warning": "警告 {n}",
        "more.resolved": "已恢复 {n}",
        "dropped": "此前有 {n} 条事件被丢弃（超出队列上限或被接收方拒绝）",
        "held.rate_limit": "因频率限制延后发送",
        "held.lockout": "因钉钉限流锁定延后发送",
        "held.unavailable": "因接收方不可用延后发送",
        "digest.intro": "自 {since} 起共 {count} 条事件，{why}。",
        "digest.cancelled": "其间已自行恢复、未列出的告警：{n} 条。",
        "count.firing": "告警 {n}",
        "count.resolved": "已恢复 {n}",
        "count.other": "其他 {n}",
        "after": "持续",
        "test.title": "monagent 测试消息",
        "test.body": "能看到这条消息，说明机器人 {robot} 配置正确。",
    },
}


@dataclass(frozen=True)
class Style:
    """How one receiver renders: language, time zone, keywords and mentions."""

    language: str = "zh"
    timezone: Optional[str] = None
    keywords: Tuple[str, ...] = ()
    mentions: Mapping[str, Sequence[str]] = field(default_factory=dict)  # severity -> @-names (mobiles, user ids) for the body

    def label(self, key: str) -> str:
        return LABELS[self.language][key]


@dataclass(frozen=True)
class Message:
    title: str
    text: str
    listed: int
    omitted: int
    mobiles: Tuple[str, ...] = ()


# ---------------------------------------------------------------- escaping and formatting

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069]+")
_SPECIAL = re.compile(r"([\\`*_\[\]<~])")
_LINE_START = re.compile(r"^(\s*)([-+>#=]|\d+[.)])")
_REGISTERS = re.compile(r"^\s*(R(?!IP\b)[A-Z0-9]{1,2}|[ECDFGS]S|CR\d|DR\d|Code|EFLAGS):")
_BARE = re.compile(r"^\s*-?[\d.]+\s*\S{0,5}\s*\(\s*[<>]=?\s*-?[\d.]+\s*\S{0,5}\s*\)\s*$")  # "21.8% (>= 2)"
_UNIT = re.compile(r"ms|[dhms]")
_DURATION_TEXT = re.compile(r"~?(\d+(ms|[dhms]))+")  # "3h20m"; the disk check's estimates: "~4h"
_ZH_UNITS = {"ms": "毫秒", "d": "天", "h": "小时", "m": "分", "s": "秒"}
_SCHEME = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*)://")


def escape(text: str, limit: int = FIELD_CHARS, defang: bool = False, line_start: bool = False) -> str:
    """Machine text as inert markdown: one line, no emphasis, links, HTML or headings, at most ``limit`` chars.

    ``line_start``: the text begins a line (a quoted log line), so list and quote markers are escaped too.
    """
    text = _CONTROL.sub(" ", str(text)).strip()
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    if defang:
        text = _SCHEME.sub(r"\1[:]//", text).replace("www.", "www[.]")
    text = _SPECIAL.sub(r"\\\1", text)
    return _LINE_START.sub(r"\1\\\2", text) if line_start else text


def format_time(ts: float, zone: Optional[tzinfo]) -> str:
    moment = datetime.fromtimestamp(ts, zone) if zone is not None else datetime.fromtimestamp(ts).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def format_number(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


def format_value(value: Optional[float], unit: str) -> str:
    if value is None:
        return ""
    unit = unit or ""
    sep = "" if unit in ("", "%") else " "
    return f"{format_number(value)}{sep}{unit}"


def sparkline(values: Sequence[float], width: int = 24) -> str:
    points = [v for v in list(values)[-width:] if not (math.isnan(v) or math.isinf(v))]
    if len(points) < 2:
        return ""
    low, high = min(points), max(points)
    if high == low:
        return SPARKS[3] * len(points)
    scale = (len(SPARKS) - 1) / (high - low)
    return "".join(SPARKS[round((v - low) * scale)] for v in points)


def json_len(text: str) -> int:
    """Bytes ``text`` takes inside a JSON string (UTF-8, escapes included); additive over concatenation."""
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8")) - 2


# ---------------------------------------------------------------- one item


def severity_name(severity: Status) -> str:
    if severity == Status.CRITICAL:
        return "critical"
    if severity in (Status.WARNING, Status.UNKNOWN):
        return "warning"
    return "info"


def is_crash(event: Event) -> bool:
    return event.kind == EventKind.OCCURRENCE and (event.check_type == "kdump" or "dump_path" in event.facts)


def headline(event: Event, defang: bool = False) -> str:
    """``disk /var 93%``: check, subject and value (escaped)."""
    if is_crash(event):
        return escape(event.facts.get("reason") or event.summary or "kernel crash", HEADLINE_CHARS, defang)
    parts = [event.key.check, event.key.subject, format_value(event.value, event.unit)]
    text = " ".join(p for p in parts if p)
    if event.kind in (EventKind.NOTICE, EventKind.OCCURRENCE) and event.summary:
        text = event.summary
    elif verdict_in_headline(event):
        text += f": {event.summary}"
    return escape(text, HEADLINE_CHARS, defang)


_PROBLEM_KINDS = (EventKind.FIRING, EventKind.ESCALATED, EventKind.DEESCALATED, EventKind.REMINDER)


def verdict_in_headline(event: Event) -> bool:
    """A problem without a value ("nginx: 0 running, expected >= 1") says what is wrong in its
    headline, so the title a phone shows in its notification is enough to act on."""
    return event.kind in _PROBLEM_KINDS and event.value is None and bool(event.summary)


class Renderer:
    def __init__(self, style: Style) -> None:
        self.style = style
        self.zone = load_zone(style.timezone)
        self.L = LABELS[style.language]

    def time(self, ts: float) -> str:
        return format_time(ts, self.zone)

    def duration(self, seconds: float) -> str:
        """``1h30m``; in Chinese ``1小时30分`` (units spelled as a reader says them)."""
        return self.localise_duration(format_duration(seconds))

    def localise_duration(self, text: str) -> str:
        """A duration text such as ``3h20m`` in the message's language; any other text unchanged."""
        if self.style.language != "zh" or not _DURATION_TEXT.fullmatch(text):
            return text
        return _UNIT.sub(lambda m: _ZH_UNITS[m.group(0)], text.replace("~", "约"))

    def badge(self, event: Event) -> str:
        if event.kind == EventKind.RESOLVED:
            return f"<font color={COLOURS['resolved']}>{self.L['resolved']}</font>"
        name = severity_name(event.severity)
        return f"<font color={COLOURS[name]}>{self.L[name]}</font>"

    def threshold(self, event: Event) -> str:
        if event.threshold is None:
            return ""
        limit = format_value(event.threshold, event.unit)
        return f" ({self.L['threshold']} {escape(event.operator or '>=')} {limit})"

    def kind_label(self, item: Item) -> str:
        label = self.L[item.event.kind.value]
        if item.event.kind == EventKind.REMINDER and item.merged > 1:
            label += f" ×{item.merged}"
        return label

    def block(self, item: Item, defang: bool) -> str:
        event = item.event
        if is_crash(event):
            return self.crash_block(event, defang)
        fields = self.fields(event, defang)
        listing = "\n".join(f"- {k}: {v}" for k, v in fields if v)
        return f"**{self.status(item)}** {headline(event, defang)}\n\n{listing}"

    def status(self, item: Item) -> str:
        """``<font color=#FF0000>CRITICAL</font> firing``; a resolve is just the green RESOLVED."""
        if item.event.kind == EventKind.RESOLVED:
            return self.badge(item.event)
        return f"{self.badge(item.event)} {self.kind_label(item)}"

    def fields(self, event: Event, defang: bool) -> List[Tuple[str, str]]:
        L, e = self.L, event
        out = [(L["host"], escape(e.host, defang=defang))]
        check = escape(e.key.check, defang=defang)
        if e.check_type and e.check_type != e.key.check:
            check += f" ({escape(e.check_type)})"
        out.append((L["check"], check))
        out.append((L["subject"], escape(e.key.subject, defang=defang)))
        if e.key.metric and e.key.metric != "status":
            out.append((L["metric"], escape(e.key.metric)))
        if e.value is not None:
            out.append((L["value"], escape(format_value(e.value, e.unit)) + self.threshold(e)))
        if e.kind == EventKind.RESOLVED and e.severity in (Status.WARNING, Status.CRITICAL):
            out.append((L["was"], self.L[severity_name(e.severity)]))
        if e.since is not None:
            out.append((L["since"], self.time(e.since)))
        if e.kind == EventKind.RESOLVED:
            out.append((L["resolved_at"], self.time(e.time)))
            if e.duration is not None:
                out.append((L["duration"], self.duration(e.duration)))
        elif e.since is None:
            out.append((L["time"], self.time(e.time)))
        out.append((L["trend"], sparkline(e.trend)))
        out.append((L["time_to_full"], escape(self.localise_duration(e.facts.get("time_to_full", "")))))
        out.append((L["growth"], escape(e.facts.get("trend", ""))))
        said = (
            e.kind in (EventKind.NOTICE, EventKind.OCCURRENCE)
            or verdict_in_headline(e)
            or (e.value is not None and _BARE.match(e.summary))
        )
        out.append((L["summary"], "" if said else escape(e.summary, defang=defang)))
        out.append((L["note"], escape(e.note, defang=defang)))
        if not defang and e.details:
            out.append((L["details"], escape(e.details, defang=defang)))
        if e.kind == EventKind.OCCURRENCE:
            out.extend(
                (escape(k), escape(v, defang=defang)) for k, v in sorted(e.facts.items()) if k not in ("time_to_full", "trend")
            )
        return out

    def crash_block(self, event: Event, defang: bool) -> str:
        """kdump-layouts.md 6.3: headline, where, who, kernel, dump path/size/format, completeness, excerpt."""
        L, f = self.L, event.facts
        test = f" ({L['test_crash']})" if f.get("test_crash", "").lower() in ("1", "true", "yes") else ""
        head = f"**{self.badge(event)} {L['tag.crash']}{test}** {headline(event, defang)}"
        text = head + "\n\n" + "\n".join(f"- {k}: {v}" for k, v in self.crash_fields(event, defang) if v)
        excerpt = [line for line in f.get("excerpt", "").splitlines() if line.strip() and not _REGISTERS.match(line)][
            :EXCERPT_LINES
        ]
        if excerpt and not defang:
            quoted = "\n\n".join("> " + escape(line, 200, line_start=True) for line in excerpt)
            text += f"\n\n{L['excerpt']}:\n\n{quoted}"
        return text

    def crash_fields(self, event: Event, defang: bool) -> List[Tuple[str, str]]:
        L, f = self.L, event.facts

        def fact(key: str) -> str:
            return escape(f.get(key, ""), defang=defang)

        host = escape(event.host)
        if f.get("host"):  # a dump server: the crashed client is named by the dump directory
            host = f"{fact('host')} ({L['via']} {host})"
        where = fact("function") + (f" \\[{fact('module')}\\]" if f.get("module") else "")
        who = fact("comm") + (f" (pid {fact('pid')})" if f.get("pid") else "")
        kernel = fact("kernel")
        if f.get("running_kernel") and f.get("running_kernel") != f.get("kernel"):
            kernel += f" ({L['running']}: {fact('running_kernel')})"
        dump = ", ".join(fact(k) for k in ("dump_path", "dump_size", "dump_format") if f.get(k))
        if "flattened" in f.get("dump_format", ""):
            dump += f" ({L['flattened']})"
        capture = f"{fact('capture_time')} ({L['capture_clock']})" if f.get("capture_time") else ""
        note = "; ".join(n for n in (fact("note"), escape(event.note, defang=defang)) if n)
        return [
            (L["host"], host),
            (L["time"], self.time(event.time)),
            (L["capture_time"], capture),
            (L["crash_time"], fact("crash_time")),
            (L["panic"], fact("panic")),
            (L["where"], where),
            (L["process"], who),
            (L["kernel"], kernel),
            (L["taint"], fact("taint")),
            (L["hardware"], fact("hardware")),
            (L["dump"], dump),
            (L["status"], fact("dump_status")),
            (L["free"], fact("free_space")),
            (L["apport"], fact("apport_report")),
            (L["note"], note),
        ]

    def digest_line(self, item: Item, defang: bool) -> str:
        event = item.event
        text = f"- {self.status(item)} {headline(event, defang)}"
        if event.value is not None and not is_crash(event):
            text += self.threshold(event)
        if event.kind == EventKind.RESOLVED and event.duration is not None:
            text += f" · {self.L['after']} {self.duration(event.duration)}"
        return text + f" · {self.time(event.time)}"


# ---------------------------------------------------------------- the message


def render(batch: Batch, style: Style, measure: Optional[Callable[[str, str], int]] = None) -> Message:
    """The message for ``batch``; ``measure(title, text)`` gives the request body size in bytes."""
    r = Renderer(style)
    title = _title(batch, r)
    head = f"#### {title}"
    if batch.digest:
        head += "\n\n" + _digest_intro(batch, r)
    measure = measure or (lambda t, x: json_len(t) + json_len(x))
    tail = _tail(batch, r)
    compact = _Frame(title, head, "\n", tail, measure)
    lines = [r.digest_line(item, batch.reduced) for item in batch.items]
    if not batch.digest:  # full blocks while they all fit; one line per item when they do not
        full = _Frame(title, head, "\n\n", tail, measure)
        blocks = [r.block(item, batch.reduced) for item in batch.items]
        listed = _fit(batch, blocks, full, r)
        if listed == len(blocks):
            return Message(title, full.text(blocks, ""), listed, 0, _mobiles(batch, style))
    listed = _fit(batch, lines, compact, r)
    text = compact.text(lines[:listed], _more(batch.items[listed:], r))
    return Message(title, text, listed, len(batch.items) - listed, _mobiles(batch, style))


@dataclass(frozen=True)
class _Frame:
    """Everything of a message but its blocks and the "+N more" line."""

    title: str
    head: str
    sep: str
    tail: str
    measure: Callable[[str, str], int]

    def text(self, blocks: Sequence[str], more: str) -> str:
        return _compose(self.head, blocks, self.sep, more, self.tail)

    def size(self, blocks: Sequence[str], more: str) -> int:
        return self.measure(self.title, self.text(blocks, more))


def _fit(batch: Batch, blocks: Sequence[str], frame: _Frame, r: Renderer) -> int:
    """How many blocks fit the budget, the rest summed up in the "+N more" line."""
    widest = r.L["more"].format(
        n=len(blocks), parts=", ".join(r.L[k].format(n=len(blocks)) for k in ("more.critical", "more.warning", "more.resolved"))
    )
    used = frame.size([], "") + json_len(widest) + 8
    listed = 0
    for block in blocks:
        cost = json_len(block) + json_len(frame.sep)
        if used + cost > batch.budget:
            break
        used += cost
        listed += 1
    while listed > 0 and frame.size(blocks[:listed], _more(batch.items[listed:], r)) > batch.budget:
        listed -= 1
    return listed


def _compose(head: str, blocks: Sequence[str], sep: str, more: str, tail: str) -> str:
    parts = [head]
    if blocks:
        parts.append(sep.join(blocks))
    if more:
        parts.append(more)
    if tail:
        parts.append(tail)
    return "\n\n".join(parts)


def _more(omitted: Sequence[Item], r: Renderer) -> str:
    if not omitted:
        return ""
    resolved = sum(1 for i in omitted if i.is_resolved)
    critical = sum(1 for i in omitted if not i.is_resolved and i.event.severity == Status.CRITICAL)
    warning = sum(1 for i in omitted if not i.is_resolved and severity_name(i.event.severity) == "warning")
    parts = [r.L["more.warning"].format(n=warning), r.L["more.resolved"].format(n=resolved)]
    if critical:
        parts.insert(0, r.L["more.critical"].format(n=critical))
    sep = "，" if r.style.language == "zh" else ", "
    return r.L["more"].format(n=len(omitted), parts=sep.join(parts))


def _tail(batch: Batch, r: Renderer) -> str:
    lines = []
    if batch.dropped:
        lines.append(r.L["dropped"].format(n=batch.dropped))
    mobiles = _mobiles(batch, r.style)
    if mobiles:
        lines.append(" ".join(f"@{m}" for m in mobiles))
    return "\n\n".join(lines)


def _mobiles(batch: Batch, style: Style) -> Tuple[str, ...]:
    seen: List[str] = []
    for item in batch.items:
        if item.event.kind in (EventKind.FIRING, EventKind.ESCALATED, EventKind.OCCURRENCE):
            for mobile in style.mentions.get(severity_name(item.event.severity), ()):
                if mobile not in seen:
                    seen.append(mobile)
    return tuple(seen)


def _hosts(batch: Batch) -> str:
    hosts = sorted({i.event.host for i in batch.items})
    return escape(hosts[0]) if len(hosts) == 1 else f"{len(hosts)} hosts"


def _title(batch: Batch, r: Renderer) -> str:
    L = r.L
    host = _hosts(batch)
    if not batch.items:
        return _with_keyword(f"[{L['tag.notice']}] {host}", r.style)
    top = batch.items[0].event
    problems = sum(1 for i in batch.items if i.is_problem)
    if batch.digest:
        counts = [L["count.firing"].format(n=problems)] if problems else []
        resolved = sum(1 for i in batch.items if i.is_resolved)
        if resolved:
            counts.append(L["count.resolved"].format(n=resolved))
        other = len(batch.items) - problems - resolved
        if other:
            counts.append(L["count.other"].format(n=other))
        title = f"[{L['tag.digest']}] {host} " + " · ".join(counts)
    elif is_crash(top):
        test = f" ({L['test_crash']})" if top.facts.get("test_crash", "").lower() in ("1", "true", "yes") else ""
        crashed = escape(top.facts["host"]) if top.facts.get("host") else host  # a dump server's client
        title = f"[{L['tag.crash']}] {crashed}: {headline(top)}{test}"
    elif problems:
        title = f"[{L['tag.firing']}:{problems}] {host} {headline(top)}"
    elif top.kind == EventKind.RESOLVED:
        count = sum(1 for i in batch.items if i.is_resolved)
        tag = L["tag.resolved"] + (f":{count}" if count > 1 else "")
        title = f"[{tag}] {host} {headline(top)}"
    elif top.kind in (EventKind.FLAP_START, EventKind.FLAP_END):
        title = f"[{L['tag.flapping']}] {host} {headline(top)}"
    else:
        title = f"[{L['tag.notice']}] {host} {headline(top)}"
    return _with_keyword(title, r.style)


def _with_keyword(title: str, style: Style) -> str:
    if style.keywords and not any(k in title for k in style.keywords):
        return f"{style.keywords[0]} {title}"
    return title


def _digest_intro(batch: Batch, r: Renderer) -> str:
    events = sum(len(i.seqs) for i in batch.items)
    reasons = [r.L[f"held.{h.value}"] for h in batch.held] or [r.L["held.rate_limit"]]
    sep = "，" if r.style.language == "zh" else ", "
    text = r.L["digest.intro"].format(
        count=events + batch.cancelled_events, since=r.time(batch.held_since), why=sep.join(reasons)
    )
    if batch.cancelled:
        text += ("" if r.style.language == "zh" else " ") + r.L["digest.cancelled"].format(n=batch.cancelled)
    return text


def render_test(robot: str, style: Style, now: float, host: str) -> Message:
    """The ``monagent notify-test`` message."""
    r = Renderer(style)
    title = _with_keyword(f"[{r.L['tag.test']}] {escape(host)} {r.L['test.title']}", style)
    text = (
        f"#### {title}\n\n{r.L['test.body'].format(robot=escape(robot))}\n\n- {r.L['host']}: {escape(host)}\n"
        f"- {r.L['time']}: {r.time(now)}"
    )
    return Message(title, text, 0, 0)


__all__ = [
    "LABELS",
    "HeldReason",
    "Message",
    "Renderer",
    "Style",
    "escape",
    "format_time",
    "json_len",
    "render",
    "render_test",
    "sparkline",
]
