"""Pulling a one-line crash reason out of a kernel log (vmcore-dmesg, dmesg.<stamp>, SUSE dmesg).

The algorithm follows kdump-layouts.md section 4.4: strip the timestamp, caller-id, log-level
and journal prefixes; find the first ``Kernel panic - not syncing:`` line (P); find the oops
block at or before P (prefer the one carrying the die counter ``[#1]``); the headline is P
when its text is specific, else the first marker line of that block.  The faulting function
comes from the first kernel instruction-pointer line of the block (x86 ``RIP:``/``IP:``,
i386 ``EIP``, arm ``PC is at``, arm64/riscv ``pc :``/``epc :``, ppc ``NIP``, s390
``Krnl PSW``), or from the first reliable call-trace frame when there is none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

HEADLINE_MAX = 160
EXCERPT_LINES = 15

_PREFIX = re.compile(
    r"^(?:<\d+>)?"  # log level (pstore, /dev/kmsg copies)
    r"(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ kernel: )?"  # journal / syslog copy
    r"(?:\[\s*\d+\.\d+(?:,\d+)?\])?"  # seconds since boot (",NN": CPU number on some vendor kernels)
    r"(?:\s?\[\s*(?P<caller>[TC]\d+)\])?"  # CONFIG_PRINTK_CALLER
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_PANIC = re.compile(r"Kernel panic - not syncing:\s*(?P<text>.*)$")
_GENERIC_PANIC = re.compile(
    r"^(?:Oops(?:: | - BUG: ))?Fatal exception(?: in interrupt)?\.?$|^panic_on_warn set|^Machine halted"
    r"|^hung_task: blocked tasks|^softlockup: hung tasks|^[Hh]ard LOCKUP|^Fatal (?:hardware error|machine check)"
    r"|^(?:Fatal )?[Hh]ardware [Ee]rror|^rcu_sched detected stalls|^RCU Stall"
)
_MARKERS = re.compile(
    r"^(?:(?:Oops: )?(?:BUG: |kernel BUG at |general protection fault|invalid opcode: |stack segment: "
    r"|double fault: |divide error: )"
    r"|Oops(?:: | - )|Internal error: |Unable to handle kernel |Watchdog detected hard LOCKUP"
    r"|watchdog: BUG: |INFO: task \S.*blocked for more than |INFO: rcu_(?:sched|preempt) detected stall"
    r"|rcu: INFO: rcu_\w+ detected stall|Machine [Cc]heck [Ee]xception|\[Hardware Error\]: |WARNING: "
    r"|------------\[ cut here"
    r"|UBSAN: |KASAN: |kernel tried to execute NX-protected page|Unable to handle kernel paging request"
    r"|BUG at )"
)
_WARNING = re.compile(r"^(?:WARNING: |------------\[ cut here)")
_CUT_HERE = re.compile(r"^------------\[ cut here")
_DIE_COUNTER = re.compile(r"\[#(\d+)\]")
_END_TRACE = re.compile(r"^---\[ end (?:trace|Kernel panic)")
_SYSRQ = re.compile(r"(?i)sysrq ?: (?:sysrq ?: )?trigger a crash|sysrq triggered crash")
_CPU_LINE = re.compile(
    r"CPU: (?P<cpu>\d+) (?:UID: \d+ )?PID: (?P<pid>\d+) Comm: (?P<comm>.+?)(?: Kdump: loaded)?"
    r" (?:Not tainted|Tainted: (?P<taint>[A-Z ]*?))\s*(?P<version>\d\S*)(?: #|$)"
)
_OLD_PID_LINE = re.compile(
    r"^Pid: (?P<pid>\d+), comm: (?P<comm>.+?) (?:Not tainted|Tainted: (?P<taint>[A-Z ]*?))\s*(?P<version>\d\S*)(?: #|$)"
)
_BANNER = re.compile(r"^Linux version (?P<version>\d\S*)")
_SYMBOL = r"(?P<func>[A-Za-z_.$][\w.$]*\+0x[0-9a-f]+/0x[0-9a-f]+)(?:\s+\[(?P<module>[\w-]+)\])?"
_USER_CS = frozenset({"0033", "0023", "e033", "e02b", "002b"})
_IP_LINES = (
    re.compile(r"^RIP: (?P<cs>[0-9a-f]{4}):(?:\[<[0-9a-f]+>\]\s+\[<[0-9a-f]+>\]\s+)?(?P<rest>.*)$"),
    re.compile(r"^RIP\s+\[<[0-9a-f]+>\]\s+(?P<rest>.*)$"),
    re.compile(r"^IP: (?:\[<[0-9a-f]+>\]\s+)?(?P<rest>.*)$"),
    re.compile(r"^EIP is at (?P<rest>.*)$"),
    re.compile(r"^EIP: (?:[0-9a-f]{4}:\[<[0-9a-f]+>\] )?(?P<rest>[A-Za-z_].*)$"),
    re.compile(r"^PC is at (?P<rest>.*)$"),
    re.compile(r"^pc ?: (?:\[<[0-9a-f]+>\] )?(?P<rest>.*?)(?:\s+lr ?: .*)?$"),
    re.compile(r"^epc\s*: (?:[0-9a-f]+ )?(?P<rest>.*)$"),
    re.compile(r"^NIP \[[0-9a-f]+\] (?P<rest>.*)$"),
    re.compile(r"^Krnl PSW : [0-9a-f]+ [0-9a-f]+ \((?P<rest>.*)\)$"),
)
_SYMBOL_RE = re.compile(_SYMBOL)
_NO_SYMBOL = re.compile(r"^(?P<addr>0x[0-9a-f]+|[0-9a-f]{8,})\s*$")
_TRACE_START = re.compile(r"^(?:Call Trace:|Call trace:|Backtrace:|\[<[0-9a-f]+>\] |\[[0-9a-f]+\] \[[0-9a-f]+\] )")
_FRAME = re.compile(r"^(?:\(?\[<?[0-9a-f]+>?\]\s*)*(?P<unreliable>\?\s+)?" + _SYMBOL + r"(?P<tail>.*)$")
_SKIP_FRAMES = re.compile(
    r"^(?:dump_stack\w*|__dump_stack|panic|vpanic|nmi_panic|__warn\w*|warn_slowpath\w*|show_stack\w*"
    r"|dump_backtrace\w*|show_trace\w*|printk\w*|_printk|vprintk\w*|dump_header|oops_end|die|__die\w*"
    r"|report_bug|handle_bug|exc_invalid_op|asm_exc_invalid_op|do_trap\w*|do_error_trap|do_invalid_op"
    r"|arch_stack_walk|stack_trace_save)\+"
)
_NOISE = re.compile(
    r"^(?:(?!RIP|EIP|NIP)(?:[A-Z][A-Z0-9]{1,3}|ORIG_RAX|EFLAGS|GPR\d\d|XER|CTR|MSR|CR[0-4]|DR[0-7]|PKRU|ESR|FAR)"
    r"\s*: ?\s*[0-9a-f]{4,}"
    r"|Code: |RSP: |FS: |CS: |[0-9a-f]{8,16}(?: [0-9a-f]{8,16})+\s*$|sp : |x\d+ ?: |\s*$)"
)


@dataclass(frozen=True)
class CrashReport:
    """What a kernel log says about the crash; empty strings mean "not found"."""

    headline: str = ""
    panic: str = ""
    function: str = ""
    module: str = ""
    comm: str = ""
    pid: str = ""
    kernel: str = ""
    taint: str = ""
    hardware: str = ""
    test_crash: bool = False
    excerpt: Tuple[str, ...] = ()

    @property
    def found(self) -> bool:
        return bool(self.headline)


@dataclass(frozen=True)
class _Line:
    text: str
    caller: str


def split_lines(text: str) -> List[_Line]:
    """Lines with their prefixes stripped and control characters removed; empty lines dropped."""
    lines = []
    for raw in text.splitlines():
        match = _PREFIX.match(raw)
        caller = (match.group("caller") or "") if match else ""
        body = raw[match.end() :] if match else raw
        if match and match.end() and body.startswith(" "):
            body = body[1:]  # the one space after the prefix
        body = _CONTROL.sub("", body).rstrip()
        if body.strip():
            lines.append(_Line(body, caller))
    return lines


def parse_dmesg(text: str) -> CrashReport:
    """The crash report of one kernel log (the whole text, or its tail)."""
    lines = split_lines(text)
    texts = [line.text.strip() for line in lines]
    panic_at = next((i for i, t in enumerate(texts) if _PANIC.search(t)), None)
    end = panic_at if panic_at is not None else len(texts)
    panic_text = _PANIC.search(texts[panic_at]).group("text").strip() if panic_at is not None else ""  # type: ignore[union-attr]
    marker_at = _oops_block_start(texts, end, allow_warning="panic_on_warn" in panic_text)
    panic_line = texts[panic_at][texts[panic_at].find("Kernel panic") :] if panic_at is not None else ""
    headline = _headline(panic_line, panic_text, texts[marker_at] if marker_at is not None else "")
    start = marker_at if marker_at is not None else (panic_at if panic_at is not None else max(0, len(texts) - 40))
    comm, pid, taint, version = _identity(texts, start)
    function, module = _faulting_function(texts, start, panic_at)
    test_crash = any(_SYSRQ.search(t) for t in texts[: end + 1]) or function.startswith("sysrq_handle_crash+")
    # a test crash is a typed fact (test_crash): the messages label it in their own language
    return CrashReport(
        headline=_shorten(headline),
        panic=panic_line,
        function=function,
        module=module,
        comm=comm,
        pid=pid,
        kernel=version or _banner_version(texts),
        taint=taint,
        hardware=next((t[len("Hardware name: ") :] for t in texts[start:] if t.startswith("Hardware name: ")), ""),
        test_crash=test_crash,
        excerpt=_excerpt(lines, _excerpt_start(texts, start)),
    )


def _headline(panic_line: str, panic_text: str, marker: str) -> str:
    if panic_line and not _GENERIC_PANIC.search(panic_text):
        return panic_line
    if marker:
        return marker
    return panic_line


def _oops_block_start(texts: Sequence[str], end: int, *, allow_warning: bool) -> Optional[int]:
    """Index of the first marker line of the root oops block at or before ``end``."""
    limit = min(end + 1, len(texts))
    markers = [i for i in range(limit) if _is_marker(texts[i], allow_warning)]
    if not markers:
        return None
    counted = [i for i in markers if _DIE_COUNTER.search(texts[i])]
    first_die = next((i for i in counted if _DIE_COUNTER.search(texts[i]).group(1) == "1"), None)  # type: ignore[union-attr]
    anchor = first_die if first_die is not None else (counted[0] if counted else markers[-1])
    start = anchor
    for i in reversed(markers):
        if i >= anchor:
            continue
        if anchor - i > 25 or any(_END_TRACE.search(texts[j]) for j in range(i, anchor)):
            break
        start = i
    if _CUT_HERE.search(texts[start]) and start + 1 < limit and _is_marker(texts[start + 1], allow_warning):
        start += 1
    return start


def _is_marker(text: str, allow_warning: bool) -> bool:
    if text.startswith("DEBUG:") or not _MARKERS.search(text):
        return False
    return allow_warning or not _WARNING.search(text)


def _identity(texts: Sequence[str], start: int) -> Tuple[str, str, str, str]:
    """comm, pid, taint flags and kernel version from the first CPU/Comm line after ``start``."""
    order = list(range(start, len(texts))) + list(range(start))
    for i in order:
        match = _CPU_LINE.search(texts[i]) or _OLD_PID_LINE.search(texts[i])
        if match:
            flags = (match.group("taint") or "").replace(" ", "")
            return match.group("comm"), match.group("pid"), flags or "not tainted", match.group("version")
    return "", "", "", ""


def _faulting_function(texts: Sequence[str], start: int, panic_at: Optional[int]) -> Tuple[str, str]:
    """(function+off/len, module) from the first kernel IP line of the block, else the call trace.

    Without an IP line (a plain panic(): sysrq, panic_on_oom, hung task) the panicking stack is
    the one after the panic line, so its trace is preferred to an earlier one (a blocked task's).
    """
    for text in texts[start:]:
        rest = _ip_rest(text)
        if rest is None:
            continue
        symbol = _SYMBOL_RE.search(rest)
        if symbol:
            return symbol.group("func"), symbol.group("module") or ""
        bare = _NO_SYMBOL.match(rest.strip())
        if bare:
            return f"no symbol ({bare.group('addr')})", ""
    if panic_at is not None:
        found = _first_trace_frame(texts, panic_at)
        if found[0]:
            return found
    return _first_trace_frame(texts, start)


def _ip_rest(text: str) -> Optional[str]:
    for pattern in _IP_LINES:
        match = pattern.match(text)
        if match:
            cs = match.groupdict().get("cs")
            if cs is not None and cs.lower() in _USER_CS:
                return None
            return match.group("rest")
    return None


def _first_trace_frame(texts: Sequence[str], start: int) -> Tuple[str, str]:
    in_trace = False
    for text in texts[start:]:
        if not in_trace:
            in_trace = bool(_TRACE_START.match(text))
            if not in_trace or text.endswith(":"):
                continue
        if text in ("<TASK>", "<IRQ>", "</IRQ>", "<NMI>", "</NMI>", "</TASK>", "<EOI>"):
            continue
        frame = _FRAME.match(text)
        if frame is None:
            if _END_TRACE.search(text) or text.startswith(("RIP:", "Code:", "Kernel Offset")):
                break
            continue
        unreliable = frame.group("unreliable") or "(unreliable)" in frame.group("tail")
        if unreliable or _SKIP_FRAMES.match(frame.group("func")):
            continue
        return frame.group("func"), frame.group("module") or ""
    return "", ""


def _banner_version(texts: Sequence[str]) -> str:
    for text in reversed(texts):
        match = _BANNER.match(text)
        if match:
            return match.group("version")
    return ""


def _excerpt_start(texts: Sequence[str], start: int) -> int:
    """Include the sysrq trigger line just before a test crash's panic line."""
    for i in range(start - 1, max(-1, start - 4), -1):
        if _SYSRQ.search(texts[i]):
            return i
    return start


def _excerpt(lines: Sequence[_Line], start: int) -> Tuple[str, ...]:
    """Up to 15 lines from the start of the crash block, registers and hex dumps removed."""
    if not lines:
        return ()
    caller = lines[start].caller if start < len(lines) else ""
    picked: List[str] = []
    for line in lines[start:]:
        text = line.text.strip()
        if (caller and line.caller and line.caller != caller) or _NOISE.match(text):
            continue
        picked.append(_shorten(line.text.rstrip()))
        if len(picked) >= EXCERPT_LINES:
            break
    return tuple(picked)


def _shorten(text: str) -> str:
    return text if len(text) <= HEADLINE_MAX else text[: HEADLINE_MAX - 1] + "…"
