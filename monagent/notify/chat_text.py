"""Rendering a batch of items as one DingTalk markdown message (title + text).

The title is what the phone shows: ``[FIRING:2] web01 disk /var 93%``, ``[RESOLVED] web01 ...``
(Chinese labels by default: ``[告警:2]``, ``[已恢复]``). The text repeats it as a heading, then
one block per item in priority order until the body budget is spent; the rest is summed up
in a ``+N more (W warning, R resolved)`` line. Everything that comes from the machine goes
through :func:`escape`, so a file or process name cannot break or forge the markdown.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import field
from typing import Callable, List, Mapping, Optional, Sequence, Tuple

from monagent import catalogue
from monagent.api import Fact, Status
from monagent.events import AGENT_CHECK, HOST_METRIC, Event, EventKind
from monagent.formatting import Formatter, load_zone
from monagent.notify.coalesce import Batch, HeldReason, Item
from monagent.records import record
from monagent.wording import event_summary, fact_text

COLOURS = {"critical": "#FF0000", "warning": "#FF9900", "resolved": "#008000", "info": "#1E90FF"}
SPARKS = "▁▂▃▄▅▆▇█"
EXCERPT_LINES = 15
FIELD_CHARS = 300
HEADLINE_CHARS = 120


@record
class Style:
    """How one receiver renders: language, time zone, keywords and mentions."""

    language: str = "zh"
    timezone: Optional[str] = None
    keywords: Tuple[str, ...] = ()
    mentions: Mapping[str, Sequence[str]] = field(default_factory=dict)  # severity -> @-names (mobiles, user ids) for the body

    def label(self, key: str) -> str:
        return catalogue.lookup(self.language, key) or key


@record
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
_DURATION_TEXT = re.compile(r"~?(\d+(ms|[dhms]))+")  # a format-1 disk estimate: "~4h", "3h20m"
_DURATION_PART = re.compile(r"(\d+)(ms|[dhms])")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
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


def log_lines(details: str) -> List[str]:
    """Details of several lines (a log's last lines): the last EXCERPT_LINES of them, for a quoted
    block where the newest line, usually the one that matters, is never cut off. One line: []."""
    lines = [line for line in details.splitlines() if line.strip()]
    return lines[-EXCERPT_LINES:] if len(lines) > 1 else []


def sparkline(values: Sequence[float], width: int = 24) -> str:
    points = [v for v in list(values)[-width:] if not (math.isnan(v) or math.isinf(v))]
    if len(points) < 2:
        return ""
    low, high = min(points), max(points)
    if high == low:
        return SPARKS[3] * len(points)
    scale = (len(SPARKS) - 1) / (high - low)
    return "".join(SPARKS[round((v - low) * scale)] for v in points)


def markdown_body_size(title: str, text: str) -> int:
    """Bytes of the smallest request body that carries ``title`` and ``text`` (a DingTalk markdown message)."""
    body = {"msgtype": "markdown", "markdown": {"title": title, "text": text}}
    return len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def json_len(text: str) -> int:
    """Bytes ``text`` takes inside a JSON string (UTF-8, escapes included); additive over concatenation."""
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8")) - 2


# ---------------------------------------------------------------- one item


def severity_name(severity: Status) -> str:
    """The notification level (colour, mention): the one table's (``monagent.api.SEVERITIES``)."""
    return severity.level


def is_boot_end(event: Event) -> bool:
    """The agent's one message about how the previous boot ended (or that the host rebooted)."""
    return event.kind == EventKind.NOTICE and event.key.check == AGENT_CHECK and event.key.metric == HOST_METRIC


def is_crash(event: Event) -> bool:
    return event.kind == EventKind.OCCURRENCE and (event.check_type == "kdump" or "dump_path" in event.facts)


def is_test_crash(event: Event) -> bool:
    flag = event.facts.get("test_crash", False)
    return flag is True or (isinstance(flag, str) and flag.lower() in ("1", "true", "yes"))  # format 1: "yes"


_PROBLEM_KINDS = (EventKind.FIRING, EventKind.ESCALATED, EventKind.DEESCALATED, EventKind.REMINDER)


def verdict_in_headline(event: Event) -> bool:
    """A problem without a value ("nginx: 0 running, expected at least 1") says what is wrong in its
    headline, so the title a phone shows in its notification is enough to act on."""
    return event.kind in _PROBLEM_KINDS and event.value is None and bool(event.reason or event.summary)


def _plain(text: str, limit: int) -> str:
    """Machine text for the title: one line, at most ``limit`` chars, no markdown escapes (the
    title is plain text in the push preview and the chat list)."""
    text = _CONTROL.sub(" ", str(text)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Renderer:
    def __init__(self, style: Style) -> None:
        self.style = style
        self.fmt = Formatter(style.language, load_zone(style.timezone))
        self.zone = self.fmt.zone

    def say(self, key: str, **args: object) -> str:
        return self.fmt.say(key, **args)

    def time(self, ts: float) -> str:
        return self.fmt.time(ts)

    def duration(self, seconds: float) -> str:
        """``1h30m``; in Chinese ``1小时30分`` (units spelled as a reader says them)."""
        return self.fmt.duration(seconds)

    def estimate(self, value: Fact) -> str:
        """The disk check's time to full: seconds (format 2), or a format-1 text such as ``~4h``."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return self.say("about", d=float(value))
        text = str(value)
        if not _DURATION_TEXT.fullmatch(text):
            return text
        seconds = sum(int(n) * _SECONDS[u] for n, u in _DURATION_PART.findall(text))
        return self.say("about", d=seconds) if text.startswith("~") else self.duration(seconds)

    def headline(self, event: Event, escaped: bool = True, defang: bool = False) -> str:
        """``disk /var 93%``: check, subject (when it adds anything) and value; a verdict says what is wrong."""
        if is_crash(event):
            text = str(event.facts.get("reason") or "") or self.say("crash.reason_unknown")
        elif event.kind in (EventKind.NOTICE, EventKind.OCCURRENCE):
            text = event_summary(self.fmt, event)
        else:
            where = [event.key.check]
            if event.key.subject and event.key.subject != event.key.check:
                where.append(event.key.subject)
            text = " ".join([*where, self.fmt.value(event.value, event.unit)]).strip()
            if verdict_in_headline(event):
                text += f": {event_summary(self.fmt, event)}"
        if not escaped:
            return _plain(text, HEADLINE_CHARS)
        return escape(text, HEADLINE_CHARS, defang)

    def badge(self, event: Event) -> str:
        if event.kind == EventKind.RESOLVED:
            return f"<font color={COLOURS['resolved']}>{self.say('resolved')}</font>"
        if is_crash(event) and is_test_crash(event):
            return f"<font color={COLOURS['info']}>{self.say('tag.test')}</font>"
        # the colour of its notification level, the word of its status (UNKNOWN reads as UNKNOWN)
        return f"<font color={COLOURS[event.severity.level]}>{self.say(event.severity.word)}</font>"

    def threshold(self, event: Event) -> str:
        if event.threshold is None:
            return ""
        return self.say(
            "aside", text=f"{self.say('threshold')} {self.fmt.threshold(event.operator, event.threshold, event.unit)}"
        )

    def kind_label(self, item: Item) -> str:
        label = self.say("reboot" if is_boot_end(item.event) else item.event.kind.value)
        if item.event.kind == EventKind.REMINDER and item.merged > 1:
            label += f" ×{item.merged}"
        return label

    def block(self, item: Item, defang: bool) -> str:
        event = item.event
        if is_crash(event):
            return self.crash_block(event, defang)
        fields = self.fields(event, defang)
        listing = "\n".join("- " + self.say("field", label=k, value=v) for k, v in fields if v)
        text = f"**{self.status(item)}** {self.headline(event, defang=defang)}\n\n{listing}"
        lines = log_lines(event.details)
        if lines and not defang:  # several lines (the last kernel lines of a boot): the newest stay
            quoted = "\n\n".join("> " + escape(line, 200, line_start=True) for line in lines)
            text += "\n\n" + self.say("field", label=self.say("details"), value="").rstrip() + f"\n\n{quoted}"
        return text

    def status(self, item: Item) -> str:
        """``<font color=#FF0000>CRITICAL</font> firing``; a resolve is just the green RESOLVED."""
        if item.event.kind == EventKind.RESOLVED:
            return self.badge(item.event)
        return f"{self.badge(item.event)} {self.kind_label(item)}"

    def summary_line(self, event: Event, defang: bool) -> str:
        """The reason below the headline, when the headline and the value line do not say it already."""
        if event.kind in (EventKind.NOTICE, EventKind.OCCURRENCE) or verdict_in_headline(event):
            return ""
        if event.value is not None:  # the value line says it; a reason of its own adds to it
            if "trend" in event.facts or "time_to_full" in event.facts:
                return ""  # a filling disk's reason restates its value, growth and time to full: their lines say it
            said = self.fmt.text(event.reason) if event.reason else ""
        else:
            said = event_summary(self.fmt, event, with_limit=False)
        return escape(said, defang=defang)

    def fields(self, event: Event, defang: bool) -> List[Tuple[str, str]]:
        e, say = event, self.say
        out = [(say("host"), escape(e.host, defang=defang))]
        notice = e.kind == EventKind.NOTICE  # the agent's own news: its check type and metric are internal names
        check = escape(e.key.check, defang=defang)
        if e.check_type and e.check_type != e.key.check and not notice:
            check += self.say("aside", text=escape(e.check_type))
        out.append((say("check"), check))
        out.append((say("subject"), escape(e.key.subject, defang=defang)))
        if e.key.metric and e.key.metric not in ("status", "occurrence", "#unknown") and not notice:
            out.append((say("metric"), escape(e.key.metric)))
        if e.value is not None:
            out.append((say("value"), escape(self.fmt.value(e.value, e.unit)) + self.threshold(e)))
        if e.kind == EventKind.RESOLVED and e.severity in (Status.WARNING, Status.CRITICAL):
            out.append((say("was"), say(e.severity.word)))
        if e.since is not None:  # a notice's since is when the agent or the host was last seen alive
            out.append((say("last_seen" if notice else "since"), self.time(e.since)))
        if e.kind == EventKind.RESOLVED:
            out.append((say("resolved_at"), self.time(e.time)))
            if e.duration is not None:
                out.append((say("duration"), self.duration(e.duration)))
        elif e.since is None:
            out.append((say("time"), self.time(e.time)))
        out.append((say("trend"), sparkline(e.trend)))
        if e.facts.get("time_to_full"):
            out.append((say("time_to_full"), escape(self.estimate(e.facts["time_to_full"]))))
        growth = e.facts.get("trend")
        if isinstance(growth, (int, float)) and not isinstance(growth, bool):
            out.append((say("growth"), self.say("growth.rate", rate=growth)))
        elif growth:
            out.append((say("growth"), escape(str(growth))))
        out.append((say("summary"), self.summary_line(e, defang)))
        out.append((say("note"), escape(e.note, defang=defang)))
        if not defang and e.details and not log_lines(e.details):  # several lines: a quoted block (block())
            out.append((say("details"), escape(e.details, defang=defang)))
        if e.kind == EventKind.OCCURRENCE:
            out.extend(
                (
                    escape(catalogue.lookup(self.style.language, f"fact.{k}") or k),
                    escape(fact_text(self.fmt, k, v), defang=defang),
                )
                for k, v in sorted(e.facts.items())
                if k not in ("time_to_full", "trend")
            )
        return out

    def crash_block(self, event: Event, defang: bool) -> str:
        """docs/design/kdump-layouts.md 6.3: headline, when (crash, boot, found), where, who, kernel, dump, excerpt."""
        f = event.facts
        tag = self.say("tag.crash")
        head = f"**{self.badge(event)} {tag}** {self.headline(event, defang=defang)}"
        text = (
            head
            + "\n\n"
            + "\n".join("- " + self.say("field", label=k, value=v) for k, v in self.crash_fields(event, defang) if v)
        )
        excerpt = [line for line in str(f.get("excerpt", "")).splitlines() if line.strip() and not _REGISTERS.match(line)][
            :EXCERPT_LINES
        ]
        if excerpt and not defang:
            quoted = "\n\n".join("> " + escape(line, 200, line_start=True) for line in excerpt)
            text += f"\n\n{self.say('heading', label=self.say('excerpt'))}\n\n{quoted}"
        return text

    def crash_time(self, event: Event) -> str:
        """When it crashed: the capture kernel's stamp (its clock, often local time), the SUSE
        README's crash time, or when the capture kernel wrote the dump."""
        f = event.facts
        if f.get("capture_time"):
            return escape(str(f["capture_time"])) + self.say("aside", text=self.say("capture_clock"))
        if f.get("crash_time"):
            return escape(str(f["crash_time"]))
        return self.time(event.since) if event.since is not None else ""

    def crash_fields(self, event: Event, defang: bool) -> List[Tuple[str, str]]:
        f, say = event.facts, self.say

        def fact(key: str) -> str:
            return escape(fact_text(self.fmt, key, f.get(key, "")), defang=defang)

        host = escape(event.host)
        if f.get("host"):  # a dump server: the crashed client is named by the dump directory
            host = f"{fact('host')} ({say('via')} {host})"
        where = fact("function") + (f" \\[{fact('module')}\\]" if f.get("module") else "")
        who = fact("comm") + (self.say("aside", text=f"pid {fact('pid')}") if f.get("pid") else "")
        kernel = fact("kernel")
        if f.get("running_kernel") and f.get("running_kernel") != f.get("kernel"):
            kernel += say("aside", text=say("field", label=say("running"), value=fact("running_kernel")))
        parts = (fact("dump_path"), self.size(f.get("dump_size")), self.dump_format(f))
        dump = say("list.sep").join(part for part in parts if part)
        taint = say("crash.not_tainted") if f.get("taint") == "not tainted" else fact("taint")
        status = str(f.get("dump_status", ""))
        boot = f.get("boot_time")
        return [
            (say("host"), host),
            (say("crash_time"), self.crash_time(event)),
            (say("boot_time"), self.time(float(boot)) if isinstance(boot, (int, float)) and boot else ""),
            (say("found_at"), self.time(event.time)),
            (say("panic"), fact("panic")),
            (say("where"), where),
            (say("process"), who),
            (say("kernel"), kernel),
            (say("taint"), taint),
            (say("hardware"), fact("hardware")),
            (say("dump"), dump),
            (
                say("status"),
                (catalogue.lookup(self.style.language, f"crash.status.{status}") or escape(status)) if status else "",
            ),
            (say("free"), self.size(f.get("free_space"))),
            (say("apport"), fact("apport_report")),
            (say("note"), "; ".join(n for n in (fact("note"), escape(event.note, defang=defang)) if n)),
        ]

    def dump_status(self, status: str) -> str:
        """complete/incomplete/failed/unknown in this language; another word as the check gave it."""
        return (catalogue.lookup(self.style.language, f"crash.status.{status}") or escape(status)) if status else ""

    def size(self, value: Optional[Fact]) -> str:
        """A size fact: bytes (format 2) or a format-1 text such as ``1.2 GiB``."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return self.fmt.bytes(value)
        return escape(str(value or ""))

    def dump_format(self, facts: Mapping[str, Fact]) -> str:
        """The core file's format; a flattened one says, once and in this language, what to run first."""
        text = str(facts.get("dump_format", ""))
        if text == "flattened" or text.startswith("flattened (run makedumpfile -R"):
            return self.say("crash.flattened")
        if text in ("none", "none (no core file)"):  # format 2, format 1
            return self.say("crash.no_core")
        return escape(text)

    def digest_line(self, item: Item, defang: bool) -> str:
        event = item.event
        text = f"- {self.status(item)} {self.headline(event, defang=defang)}"
        if event.value is not None and not is_crash(event):
            text += self.threshold(event)
        if event.kind == EventKind.RESOLVED and event.duration is not None:
            text += f" · {self.say('after')} {self.duration(event.duration)}"
        return text + f" · {self.time(event.time)}"


# ---------------------------------------------------------------- the message


def render(batch: Batch, style: Style, measure: Optional[Callable[[str, str], int]] = None) -> Message:
    """The message for ``batch``; ``measure(title, text)`` gives the request body size in bytes.

    The body never exceeds ``batch.budget``: blocks that do not fit become lines, lines that do not
    fit are summed up in the "+N more" line, and what still does not fit is cut (a hard limit)."""
    r = Renderer(style)
    title = _title(batch, r, escaped=False)
    head = f"#### {_title(batch, r, escaped=True)}"
    if batch.digest:
        head += "\n\n" + _digest_intro(batch, r)
    measure = measure or markdown_body_size
    tail = _tail(batch, r)
    compact = _Frame(title, head, "\n", tail, measure)
    lines = [r.digest_line(item, batch.reduced) for item in batch.items]
    mobiles = _mobiles(batch, style)
    if not batch.digest:  # full blocks while they all fit; one line per item when they do not
        full = _Frame(title, head, "\n\n", tail, measure)
        blocks = [r.block(item, batch.reduced) for item in batch.items]
        listed = _fit(batch, blocks, full, r)
        if listed == len(blocks):
            return _within(Message(title, full.text(blocks, ""), listed, 0, mobiles), batch.budget, measure)
    listed = _fit(batch, lines, compact, r)
    text = compact.text(lines[:listed], _more(batch.items[listed:], r))
    return _within(Message(title, text, listed, len(batch.items) - listed, mobiles), batch.budget, measure)


def _within(message: Message, budget: int, measure: Callable[[str, str], int]) -> Message:
    """``message`` cut to ``budget`` bytes if a head, a title or a "+N more" line alone is too long."""
    if measure(message.title, message.text) <= budget:
        return message
    title = message.title
    if measure(title, "") > budget // 4:
        title = _cut(title, lambda t: measure(t, "") <= budget // 4)
    text = _cut(message.text, lambda t: measure(title, t) <= budget)
    return dataclasses.replace(message, title=title, text=text)


def _cut(text: str, fits: Callable[[str], bool]) -> str:
    """The longest prefix of ``text`` (plus "…") that ``fits``; never half a markdown escape."""
    low, high = 0, len(text)
    while low < high:  # binary search on the prefix length
        middle = (low + high + 1) // 2
        if fits(text[:middle].rstrip("\\") + "…"):
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip("\\") + "…"


@record
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
    n = len(blocks)
    parts = r.say("list.sep").join(r.say(k, n=n) for k in ("more.critical", "more.warning", "more.resolved"))
    widest = r.say("more", n=n, parts=parts)
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
    parts = [r.say("more.warning", n=warning), r.say("more.resolved", n=resolved)]
    if critical:
        parts.insert(0, r.say("more.critical", n=critical))
    return r.say("more", n=len(omitted), parts=r.say("list.sep").join(parts))


def _tail(batch: Batch, r: Renderer) -> str:
    lines = []
    if batch.dropped:
        lines.append(r.say("dropped", n=batch.dropped))
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


def _hosts(batch: Batch, r: Renderer, escaped: bool) -> str:
    hosts = sorted({i.event.host for i in batch.items})
    if len(hosts) != 1:
        return r.say("hosts", n=len(hosts))
    return escape(hosts[0]) if escaped else _plain(hosts[0], FIELD_CHARS)


def _title(batch: Batch, r: Renderer, escaped: bool) -> str:
    """The title: plain text for the push preview and chat list, escaped for the body's heading."""
    host = _hosts(batch, r, escaped)
    if not batch.items:
        return _with_keyword(f"[{r.say('tag.notice')}] {host}", r.style)
    top = batch.items[0].event
    headline = r.headline(top, escaped=escaped)
    problems = sum(1 for i in batch.items if i.is_problem)
    if batch.digest:
        counts = [r.say("count.firing", n=problems)] if problems else []
        resolved = sum(1 for i in batch.items if i.is_resolved)
        if resolved:
            counts.append(r.say("count.resolved", n=resolved))
        other = len(batch.items) - problems - resolved
        if other:
            counts.append(r.say("count.other", n=other))
        title = f"[{r.say('tag.digest')}] {host} " + " · ".join(counts)
    elif is_crash(top):
        tag = r.say("tag.test_crash" if is_test_crash(top) else "tag.crash")
        client = str(top.facts.get("host") or "")
        crashed = (escape(client) if escaped else _plain(client, FIELD_CHARS)) if client else host  # a dump server's client
        title = f"[{tag}] {crashed}: {headline}"
    elif problems:
        title = f"[{r.say('tag.firing')}:{problems}] {host} {headline}"
    elif top.kind == EventKind.RESOLVED:
        count = sum(1 for i in batch.items if i.is_resolved)
        tag = r.say("tag.resolved") + (f":{count}" if count > 1 else "")
        title = f"[{tag}] {host} {headline}"
    elif top.kind in (EventKind.FLAP_START, EventKind.FLAP_END):
        title = f"[{r.say('tag.flapping')}] {host} {headline}"
    elif is_boot_end(top):
        title = f"[{r.say('tag.reboot')}] {host} {headline}"
    else:
        title = f"[{r.say('tag.notice')}] {host} {headline}"
    return _with_keyword(title, r.style)


def _with_keyword(title: str, style: Style) -> str:
    if style.keywords and not any(k in title for k in style.keywords):
        return f"{style.keywords[0]} {title}"
    return title


def _digest_intro(batch: Batch, r: Renderer) -> str:
    events = sum(len(i.seqs) for i in batch.items)
    reasons = [r.say(f"held.{h.value}") for h in batch.held] or [r.say("held.rate_limit")]
    why = r.say("list.sep").join(reasons)
    text = r.say("digest.intro", count=events + batch.cancelled_events, since=batch.held_since, why=why)
    if batch.cancelled:
        text += r.say("digest.cancelled", n=batch.cancelled)
    return text


def render_test(robot: str, style: Style, now: float, host: str) -> Message:
    """The ``monagent notify-test`` message."""
    r = Renderer(style)
    title = _with_keyword(f"[{r.say('tag.test')}] {_plain(host, FIELD_CHARS)} {r.say('test.title')}", style)
    heading = _with_keyword(f"[{r.say('tag.test')}] {escape(host)} {r.say('test.title')}", style)
    text = (
        f"#### {heading}\n\n{r.say('test.body', robot=escape(robot))}\n\n- {r.say('host')}: {escape(host)}\n"
        f"- {r.say('time')}: {r.time(now)}"
    )
    return Message(title, text, 0, 0)


__all__ = [
    "HeldReason",
    "Message",
    "Renderer",
    "Style",
    "escape",
    "json_len",
    "render",
    "render_test",
    "sparkline",
]
