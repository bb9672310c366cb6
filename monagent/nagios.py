"""The Nagios plugin output format, both ways: parsing what a plugin prints, and printing it.

This is a public module, like :mod:`monagent.api`: the built-in ``nagios`` check type
uses it, and plugin authors may use it too (to read a tool's Nagios output, or to
render a Nagios line). It follows the Monitoring Plugins developer guidelines:

- **Output**: the first line is ``TEXT | PERFDATA``; later lines are long text, and a
  ``|`` on a later line starts more perfdata that runs to the end of the output.
- **Perfdata**: space-separated ``'label'=value[UOM];[warn];[crit];[min];[max]``. A label
  with spaces is quoted, and a quote inside it is written twice (``'it''s'``). The value
  may be ``U`` (could not be determined). Empty and trailing fields may be left out.
- **Ranges** (``warn``/``crit``): ``[@]start:end``; ``start`` defaults to 0, an empty
  ``end`` is +infinity, ``~`` as start is -infinity, endpoints are inclusive. Without
  ``@`` the value alerts when it is *outside* the range, with ``@`` when it is *inside*.

Parsing is lenient: a malformed perfdata field is skipped with a note saying why, and
never raises. Example::

    >>> out = parse_output("LOAD OK - load 0.23|load1=0.230;5.000;10.000;0;")
    >>> out.summary, out.perfdata[0].value, str(out.perfdata[0].critical)
    ('LOAD OK - load 0.23', 0.23, '10')
    >>> Range.parse("@10:20").alerts(15)
    True
"""

from __future__ import annotations

import math
import re
from typing import Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from monagent.api import Direction, Metric, Status, Threshold
from monagent.records import record

__all__ = [
    "PerfDatum",
    "PluginOutput",
    "Range",
    "evaluate",
    "flatten_results",
    "format_nagios",
    "format_number",
    "format_perfdata",
    "nagios_uom",
    "parse_output",
    "parse_perfdata",
    "perf_label",
]

_NUMBER = re.compile(r"[-+]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][-+]?\d+)?")


def _number(text: str) -> float:
    """A perfdata number; a decimal comma (a plugin run under a German locale) is accepted."""
    if not _NUMBER.fullmatch(text):
        raise ValueError(text)
    return float(text.replace(",", "."))


# ---------------------------------------------------------------- ranges


@record
class Range:
    """A Nagios threshold range: alert outside ``[start, end]``, or inside it when ``inside``."""

    start: float = 0.0
    end: float = math.inf
    inside: bool = False

    @classmethod
    def parse(cls, text: str) -> Range:
        """``"10"``, ``"10:"``, ``"~:10"``, ``"10:20"``, ``"@10:20"``; raises ValueError with the reason."""
        body = text.strip()
        inside = body.startswith("@")
        if inside:
            body = body[1:]
        if not body:
            raise ValueError(f'empty range "{text}"')
        start_text, colon, end_text = body.partition(":")
        if not colon:
            start_text, end_text = "0", body
        try:
            start = -math.inf if start_text == "~" else _number(start_text) if start_text else 0.0
            end = _number(end_text) if end_text else math.inf
        except ValueError:
            raise ValueError(f'"{text}" is not a range such as 10, 10:, ~:10, 10:20 or @10:20') from None
        if start > end:
            raise ValueError(f'range "{text}" starts above its end')
        return cls(start, end, inside)

    def alerts(self, value: float) -> bool:
        """True when ``value`` is in the alerting part of this range."""
        within = self.start <= value <= self.end
        return within if self.inside else not within

    def __str__(self) -> str:
        prefix = "@" if self.inside else ""
        end = "" if self.end == math.inf else format_number(self.end)
        if self.start == 0 and end:
            return f"{prefix}{end}"
        start = "~" if self.start == -math.inf else format_number(self.start)
        return f"{prefix}{start}:{end}"


def evaluate(value: Optional[float], warning: Optional[Range], critical: Optional[Range]) -> Status:
    """Nagios order: critical is checked first, then warning. ``None`` (``U``) is UNKNOWN."""
    if value is None:
        return Status.UNKNOWN
    if critical is not None and critical.alerts(value):
        return Status.CRITICAL
    if warning is not None and warning.alerts(value):
        return Status.WARNING
    return Status.OK


# ---------------------------------------------------------------- perfdata


@record
class PerfDatum:
    """One perfdata field; ``value`` None is Nagios ``U``."""

    label: str
    value: Optional[float]
    uom: str = ""
    warning: Optional[Range] = None
    critical: Optional[Range] = None
    minimum: Optional[float] = None
    maximum: Optional[float] = None

    def status(self) -> Status:
        """The status the plugin's own ranges give this value."""
        return evaluate(self.value, self.warning, self.critical)

    def to_metric(self) -> Metric:
        return Metric(self.label, self.value, self.uom, self.minimum, self.maximum)

    def __str__(self) -> str:
        fields = [
            ("U" if self.value is None else format_number(self.value)) + self.uom,
            "" if self.warning is None else str(self.warning),
            "" if self.critical is None else str(self.critical),
            "" if self.minimum is None else format_number(self.minimum),
            "" if self.maximum is None else format_number(self.maximum),
        ]
        while fields[-1] == "":
            fields.pop()
        return f"{_quote_label(self.label)}={';'.join(fields)}"


_WHITESPACE = " \t\r\n"


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WHITESPACE:
        pos += 1
    return pos


def _token_end(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] not in _WHITESPACE:
        pos += 1
    return pos


def _read_label(text: str, pos: int) -> Tuple[Optional[str], int, str]:
    """``(label, position after "=", problem)``; label None means skip to ``position``."""
    if text[pos] == "'":
        chars: List[str] = []
        i = pos + 1
        while i < len(text):
            if text[i] == "'":
                if text[i + 1 : i + 2] == "'":
                    chars.append("'")
                    i += 2
                    continue
                if text[i + 1 : i + 2] == "=":
                    return "".join(chars), i + 2, ""
                break
            chars.append(text[i])
            i += 1
        # Skip only the first word: an unbalanced quote must not swallow the good fields after it.
        return None, _token_end(text, pos), 'the quoted label is not closed by "\'="'
    end = pos
    while end < len(text) and text[end] not in _WHITESPACE and text[end] != "=":
        end += 1
    if end >= len(text) or text[end] != "=":
        return None, end, 'no "=" after the label'
    if end == pos:
        return None, _token_end(text, end), "the label is empty"
    return text[pos:end], end + 1, ""


_VALUE = re.compile(r"(?P<number>[-+]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][-+]?\d+)?)(?P<uom>[^\d;.,+-][^;]*)?")


def _parse_value(raw: str) -> Tuple[bool, Optional[float], str]:
    """``(ok, value, uom)`` of the first field; ``U`` is ``(True, None, "")``."""
    if raw == "U":
        return True, None, ""
    match = _VALUE.fullmatch(raw)
    if not match:
        return False, None, ""
    return True, float(match.group("number").replace(",", ".")), match.group("uom") or ""


def _parse_range(label: str, name: str, raw: str, notes: List[str]) -> Optional[Range]:
    if not raw:
        return None
    try:
        return Range.parse(raw)
    except ValueError as exc:
        notes.append(f'ignored the {name} range of "{label}": {exc}')
        return None


def _parse_limit(label: str, name: str, raw: str, uom: str, notes: List[str]) -> Optional[float]:
    if uom and raw.endswith(uom):
        raw = raw[: -len(uom)]
    if not raw:
        return None
    try:
        return _number(raw)
    except ValueError:
        notes.append(f'ignored the {name} "{raw}" of "{label}": not a number')
        return None


def _parse_fields(label: str, text: str) -> Tuple[Optional[PerfDatum], List[str]]:
    """The ``value[UOM];warn;crit;min;max`` part of one field; a bad value skips the field,
    a bad range or limit drops only that part."""
    parts = text.split(";")
    notes: List[str] = []
    if any(parts[5:]):
        notes.append(f'ignored extra fields "{";".join(parts[5:])}" of "{label}"')
    value_text, warn, crit, low, high = (parts + [""] * 5)[:5]
    ok, value, uom = _parse_value(value_text)
    if not ok:
        why = "it has no value" if not value_text else f'"{value_text}" is not a number'
        return None, [*notes, f'skipped "{label}={text}": {why}']
    datum = PerfDatum(
        label,
        value,
        uom,
        _parse_range(label, "warning", warn, notes),
        _parse_range(label, "critical", crit, notes),
        _parse_limit(label, "minimum", low, uom, notes),
        _parse_limit(label, "maximum", high, uom, notes),
    )
    return datum, notes


def parse_perfdata(text: str) -> Tuple[Tuple[PerfDatum, ...], Tuple[str, ...]]:
    """Every well-formed field of ``text``, and a note for each part that was skipped or ignored.

    A label seen twice keeps its first value (a metric name must be unique).
    """
    data: List[PerfDatum] = []
    notes: List[str] = []
    seen = set()
    pos = _skip_space(text, 0)
    while pos < len(text):
        label, after, problem = _read_label(text, pos)
        if label is None:
            notes.append(f'skipped "{text[pos:after]}": {problem}')
            pos = _skip_space(text, after)
            continue
        end = _token_end(text, after)
        datum, field_notes = _parse_fields(label, text[after:end])
        notes.extend(field_notes)
        if datum is not None and label in seen:
            notes.append(f'skipped a second "{label}": the label is already used')
        elif datum is not None:
            seen.add(label)
            data.append(datum)
        pos = _skip_space(text, end)
    return tuple(data), tuple(notes)


# ---------------------------------------------------------------- whole output


@record
class PluginOutput:
    """A plugin's stdout, split the Nagios 3 way."""

    summary: str
    long_text: str = ""
    perfdata: Tuple[PerfDatum, ...] = ()
    notes: Tuple[str, ...] = ()

    def metrics(self) -> Tuple[Metric, ...]:
        return tuple(p.to_metric() for p in self.perfdata)


def parse_output(text: str) -> PluginOutput:
    """First line: summary and perfdata; later lines: long text until a ``|``, perfdata after it."""
    lines = [line.rstrip("\r") for line in text.split("\n")]
    summary, bar, perf = lines[0].partition("|")
    perf_parts = [perf] if bar else []
    long_lines: List[str] = []
    in_perfdata = False
    for line in lines[1:]:
        if in_perfdata:
            perf_parts.append(line)
            continue
        before, bar, after = line.partition("|")
        if bar:
            long_lines.append(before)
            perf_parts.append(after)
            in_perfdata = True
        else:
            long_lines.append(line)
    long_text = "\n".join(long_lines).strip("\n")
    # Nagios joins the perfdata of the first and the later lines without a separator;
    # a space is what every plugin meant, and it cannot merge two fields into one.
    perfdata, notes = parse_perfdata(" ".join(perf_parts))
    return PluginOutput(summary.strip(), "\n".join(s.rstrip() for s in long_text.split("\n")), perfdata, notes)


# ---------------------------------------------------------------- printing


def format_number(value: float) -> str:
    """Perfdata digits only (``[-0-9.]``): no exponent, no trailing zeros."""
    if math.isfinite(value) and float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = repr(float(value))
    if "e" in text or "inf" in text or "nan" in text:
        text = f"{value:.12f}".rstrip("0").rstrip(".") if math.isfinite(value) else "0"
    return text


def _quote_label(label: str) -> str:
    if label and not any(c in label for c in " \t'=\"|;"):
        return label
    return "'" + label.replace("'", "''") + "'"


_UOM = {
    "": "",
    "%": "%",
    "s": "s",
    "ms": "ms",
    "us": "us",
    "c": "c",
    "B": "B",
    "KB": "KB",
    "MB": "MB",
    "GB": "GB",
    "TB": "TB",
    "seconds": "s",
    "bytes": "B",
    "percent": "%",
}


def nagios_uom(unit: str) -> str:
    """The Nagios UOM for a monagent unit; a unit Nagios has no name for is left out."""
    return _UOM.get(unit, "")


def _threshold_ranges(threshold: Optional[Threshold]) -> Tuple[Optional[Range], Optional[Range]]:
    """Nagios ranges that alert where ``threshold`` does (the boundary value itself aside)."""
    if threshold is None:
        return None, None

    def one(limit: Optional[float]) -> Optional[Range]:
        if limit is None:
            return None
        if threshold.direction == Direction.ABOVE:
            return Range(-math.inf if limit < 0 else 0.0, limit)
        return Range(limit, math.inf)

    return one(threshold.warning), one(threshold.critical)


def format_perfdata(label: str, metric: Metric, threshold: Optional[Threshold] = None) -> str:
    """One perfdata field for ``metric`` under ``label``, with warn/crit from ``threshold``."""
    warning, critical = _threshold_ranges(threshold)
    uom = nagios_uom(metric.unit)
    return str(PerfDatum(label, metric.value, uom, warning, critical, metric.minimum, metric.maximum))


MetricEntry = Union[Metric, Tuple[str, Metric]]


def perf_label(subject: str, metric_name: str) -> str:
    """The perfdata label of a metric of a subject: ``"/var used_percent"``, or the bare name."""
    return f"{subject} {metric_name}" if subject else metric_name


def format_nagios(
    check_name: str,
    status: Status,
    summary: str,
    metrics: Iterable[MetricEntry] = (),
    thresholds: Mapping[str, Threshold] = {},
    *,
    long_text: str = "",
) -> str:
    """One Nagios plugin line: ``NAME STATUS: summary | perfdata`` (no trailing newline).

    ``metrics`` holds :class:`Metric` values (labelled by their name) or ``(label, Metric)``
    pairs (see :func:`perf_label` and :func:`flatten_results`); each field's warn/crit come
    from ``thresholds[metric.name]``. ``|`` and line breaks in the summary are replaced so
    the line stays one line. ``long_text``, when given, follows on the next lines (Nagios 3
    long output).
    """
    text = " ".join(summary.replace("|", "/").split())
    line = f"{check_name} {status.name}: {text}" if text else f"{check_name} {status.name}"
    fields = []
    for entry in metrics:
        label, metric = entry if isinstance(entry, tuple) else (entry.name, entry)
        fields.append(format_perfdata(label, metric, thresholds.get(metric.name)))
    if fields:
        line += " | " + " ".join(fields)
    extra = long_text.replace("|", "/").strip("\n")
    return f"{line}\n{extra}" if extra else line


def flatten_results(results: Sequence[object]) -> List[Tuple[str, Metric]]:
    """``(label, metric)`` pairs of results (anything with ``subject`` and ``metrics``), for :func:`format_nagios`."""
    return [(perf_label(getattr(r, "subject", ""), m.name), m) for r in results for m in getattr(r, "metrics", ())]
