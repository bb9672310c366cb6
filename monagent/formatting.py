"""The one place that turns quantities and message ids into text, in one language.

Every output (``monagent check``, the console, DingTalk, webhooks, Alertmanager annotations,
``status``, ``notify-test``, the operator's log lines) asks a :class:`Formatter` for its words,
so a value reads the same everywhere: ``500 MiB``, ``12 ms``, ``93.5%``, ``2h05m``/``2小时5分``.

Units are chosen as a person would write them:

- ``B`` (and ``B/s``): binary units with 3 significant digits (``1.21 GiB``, ``500 MiB/s``);
- ``s``: milliseconds below one second (``12 ms``), seconds below a minute (``1.5 s``), a duration
  above (``2h05m``);
- ``%``: no spurious decimals (``93%``, ``93.5%``, ``0.04%``);
- any other unit (``/s``, ``req``) follows the number once, with numbers of 100 and more rounded to
  whole ones.

Message texts live in the catalogues (:mod:`monagent.catalogue`), one per language. A text is
a template whose fields say what they hold: ``{used:bytes}``, ``{age:duration}``, ``{at:time}``,
``{value:%}`` (any other spec is a unit), ``{n}`` (a count or a name). A check ships its own texts
in a :class:`Text` (``texts={"en": ..., "zh": ...}``), so a plugin speaks every language the
built-ins speak.
"""

from __future__ import annotations

import functools
import math
from dataclasses import field
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple, Union

from monagent import catalogue
from monagent.records import record

if TYPE_CHECKING:
    import string
    from datetime import tzinfo

DEFAULT_LANGUAGE = "en"

MAX_DECIMALS = 6
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


@record
class Text:
    """A message by id with typed arguments, instead of prose.

    ``id`` names a catalogue entry (``process.count_below``); ``args`` are plain values (numbers,
    strings, seconds since the epoch) whose template fields say how to show them. ``texts`` are
    the check's own templates per language (a plugin's reasons), used before the catalogues;
    ``fallback`` is shown when no language knows the id (free text from a check with nothing better).
    """

    id: str
    args: Mapping[str, Any] = field(default_factory=dict)
    texts: Mapping[str, str] = field(default_factory=dict)
    fallback: str = ""

    def to_json(self) -> Dict[str, Any]:
        data: Dict[str, Any] = {"id": self.id, "args": {k: _arg_to_json(v) for k, v in self.args.items()}}
        if self.texts:
            data["texts"] = dict(self.texts)
        if self.fallback:
            data["fallback"] = self.fallback
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Text:
        return cls(
            str(data["id"]),
            {str(k): _arg_from_json(v) for k, v in (data.get("args") or {}).items()},
            {str(k): str(v) for k, v in (data.get("texts") or {}).items()},
            str(data.get("fallback") or ""),
        )


def _arg_to_json(value: Any) -> Any:
    if isinstance(value, Text):
        return {"text": value.to_json()}
    if isinstance(value, (list, tuple)):
        return [_arg_to_json(v) for v in value]
    return value


def _arg_from_json(value: Any) -> Any:
    if isinstance(value, dict) and isinstance(value.get("text"), dict):
        return Text.from_json(value["text"])
    if isinstance(value, list):
        return tuple(_arg_from_json(v) for v in value)
    return value


def joined(*parts: Union[Text, str]) -> Text:
    """Several reasons as one, separated as the language separates clauses (``; ``/``；``)."""
    return Text("list.clauses", {"items": tuple(p for p in parts if p)})


def plain(text: str) -> Text:
    """Free text from a check that has nothing better (a Nagios plugin's output): shown as is."""
    return Text("", fallback=text)


Words = Union[Text, str]


def load_zone(name: Optional[str]) -> Optional[tzinfo]:
    """The IANA zone ``name`` (None or empty: the host's local zone); ValueError when unknown."""
    if not name:
        return None
    try:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # only when a zone is configured

        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(name) from exc


def significant(value: float, digits: int = 3) -> str:
    """``1.2345`` -> ``1.23``, ``93.0`` -> ``93``, ``1500.51`` -> ``1501``: at most ``digits`` significant
    digits below 10**digits, whole numbers above, never an exponent or trailing zeros."""
    if math.isnan(value) or math.isinf(value):
        return "NaN" if math.isnan(value) else ("-∞" if value < 0 else "∞")
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = min(MAX_DECIMALS, max(0, digits - 1 - magnitude))  # 1e-300 is 0, not 300 zeros
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


class Formatter:
    """Quantities, times and catalogue texts in one language and one time zone."""

    def __init__(self, language: str = DEFAULT_LANGUAGE, zone: Optional[Union[tzinfo, str]] = None) -> None:
        if language not in catalogue.LANGUAGES:
            raise ValueError(f"unknown language {language!r} (known: {', '.join(sorted(catalogue.LANGUAGES))})")
        self.language = language
        self.zone = load_zone(zone) if isinstance(zone, str) or zone is None else zone

    # ------------------------------------------------------------ quantities
    def number(self, value: float) -> str:
        """A bare number: 3 significant digits, whole from 100 on (``1500.51`` -> ``1501``)."""
        if abs(value) >= 100 and not math.isinf(value):
            return str(round(value))
        return significant(value)

    def bytes(self, count: float) -> str:
        """``524288000`` -> ``500 MiB``; binary units, 3 significant digits."""
        if math.isnan(count) or math.isinf(count):
            return significant(count) + " B"
        size, unit = abs(float(count)), 0
        while size >= 1024 and unit < len(_BINARY) - 1:
            size /= 1024
            unit += 1
        text = significant(size) if unit else str(round(size))  # no fraction of a byte
        if text == "1024" and unit < len(_BINARY) - 1:  # 1023.9 MiB rounds up to the next unit
            text, unit = "1", unit + 1
        return f"{'-' if count < 0 else ''}{text} {_BINARY[unit]}"

    def duration(self, seconds: float) -> str:
        """``7500`` -> ``2h05m`` (``2小时5分``); ``0.012`` -> ``12 ms``; two units at most."""
        if math.isnan(seconds) or math.isinf(seconds):
            return significant(seconds)
        seconds = max(0.0, float(seconds))
        if seconds < 1:
            return self._join([(round(seconds * 1000), "ms")]) if seconds else self._join([(0, "s")])
        whole = round(seconds)
        parts: List[Tuple[int, str]] = []
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
            if whole >= size or (parts and len(parts) < 2):
                parts.append((whole // size, unit))
                whole %= size
            if len(parts) == 2:
                break
        while len(parts) > 1 and parts[-1][0] == 0:
            parts.pop()
        return self._join(parts)

    def _unit(self, unit: str) -> str:
        return catalogue.lookup(self.language, f"unit.{unit}") or unit

    def _join(self, parts: List[Tuple[int, str]]) -> str:
        if self.language == "zh":
            if len(parts) == 1 and parts[0][1] == "m":  # "5分钟"; "2小时5分" needs no 钟
                return f"{parts[0][0]}分钟"
            return "".join(f"{n}{self._unit(u)}" for n, u in parts)
        if len(parts) == 1:
            n, u = parts[0]
            return f"{n} ms" if u == "ms" else f"{n}{u}"
        (n1, u1), (n2, u2) = parts
        return f"{n1}{u1}{n2:02d}{u2}"

    def value(self, value: Optional[float], unit: str = "") -> str:
        """A measured value with its unit chosen as a person writes it; empty for None."""
        if value is None:
            return ""
        unit = unit or ""
        if unit == "B":
            return self.bytes(value)
        if unit == "B/s":
            return self.bytes(value) + "/s"
        if unit == "s":
            if 0 < abs(value) < 1 or abs(value) >= 60:
                return self.duration(value)
            return f"{significant(value)} s" if self.language != "zh" else f"{significant(value)}秒"
        if unit == "%":
            return significant(value) + "%"
        number = self.number(value)
        if not unit:
            return number
        return f"{number}{unit}" if unit[0] in "/%" else f"{number} {unit}"

    def operator(self, operator: str) -> str:
        return operator or ">="

    def threshold(self, operator: str, limit: Optional[float], unit: str = "") -> str:
        """``>= 95%``, ``< 1``; empty without a limit."""
        if limit is None:
            return ""
        return f"{self.operator(operator)} {self.value(limit, unit)}"

    def count(self, n: int) -> str:
        return str(int(n))

    def _fields(self) -> string.Formatter:
        # made at the first message: string and datetime cost 2 ms of every command's start-up (#17)
        fields: string.Formatter = _fields_class()(self)  # not kept: a Formatter stays picklable
        return fields

    def _moment(self, ts: float, pattern: str) -> str:
        from datetime import datetime

        try:
            moment = datetime.fromtimestamp(ts, self.zone) if self.zone is not None else datetime.fromtimestamp(ts).astimezone()
        except (OverflowError, ValueError, OSError):  # a corrupt or far-off timestamp must not stop a message
            return f"{ts!r} (?)"
        return moment.strftime(pattern).strip()

    def time(self, ts: float) -> str:
        """``2026-09-21 22:13:20 CST`` in the configured zone (the host's without one)."""
        return self._moment(ts, "%Y-%m-%d %H:%M:%S %Z")

    def minute(self, ts: float) -> str:
        """``2026-09-21 22:13``: a date and time to the minute, for tables."""
        return self._moment(ts, "%Y-%m-%d %H:%M")

    def clock(self, ts: float) -> str:
        """``10:02``: the time of day, for one-line outputs."""
        return self._moment(ts, "%H:%M")

    def date(self, ts: float) -> str:
        return self._moment(ts, "%Y-%m-%d")

    # ------------------------------------------------------------ texts
    def template(self, message_id: str, texts: Optional[Mapping[str, str]] = None) -> Optional[str]:
        """The template of ``message_id`` in this language: the check's own, then the catalogue's."""
        if texts and self.language in texts:
            return texts[self.language]
        return catalogue.lookup(self.language, message_id)

    def say(self, message_id: str, **args: Any) -> str:
        """The catalogue text ``message_id`` with ``args`` filled in."""
        template = self.template(message_id)
        if template is None:
            raise KeyError(f"no text {message_id!r} in the {self.language!r} catalogue")
        return self._fields().format(template, **args)

    def text(self, words: Optional[Words]) -> str:
        """A :class:`Text` in this language (a plain string as it is)."""
        if words is None:
            return ""
        if isinstance(words, str):
            return words
        template = self.template(words.id, words.texts) if words.id else None
        if template is None:
            if words.fallback:
                return words.fallback
            template = words.texts.get(DEFAULT_LANGUAGE) or words.id
        try:
            return self._fields().format(template, **words.args)
        except (KeyError, IndexError, ValueError):  # a plugin's template naming an argument it did not pass
            return words.fallback or template

    def field(self, value: Any, spec: str) -> str:
        """One template field: ``bytes``, ``duration``, ``time``, ``date``, ``count``; any other spec is a unit."""
        if value is None:
            return ""
        if isinstance(value, Text):
            return self.text(value)
        if isinstance(value, (list, tuple)):
            sep = self.say("list.sep" if spec == "list" else "list.clause_sep")
            return sep.join(self.field(v, "" if spec == "list" else spec) for v in value)
        if spec == "":
            if isinstance(value, float):
                return self.number(value)
            return str(value)
        if spec == "bytes":
            return self.bytes(float(value))
        if spec == "duration":
            return self.duration(float(value))
        if spec == "time":
            return self.time(float(value))
        if spec == "date":
            return self.date(float(value))
        if spec == "s":  # an English plural ending: "{n} zombie{n:s}"
            return "" if value == 1 else "s"
        if spec == "count":
            return self.count(int(value))
        if spec == "op":
            return self.operator(str(value))
        if spec == "num":
            return self.number(float(value))
        return self.value(float(value), "" if spec == "-" else spec)


@functools.cache
def _fields_class() -> Any:
    """A string.Formatter that formats each field with its owner's ``field``; defined at first use."""
    import string

    class _Fields(string.Formatter):
        def __init__(self, owner: Formatter) -> None:
            self.owner = owner

        def format_field(self, value: Any, format_spec: str) -> str:
            return self.owner.field(value, format_spec)

    return _Fields


__all__ = ["DEFAULT_LANGUAGE", "Formatter", "Text", "Words", "joined", "load_zone", "plain", "significant"]
