"""One voice: the same alerts through every output, in both languages, against reviewed golden files.

Outputs: the DingTalk markdown (title and text), the webhook's events (summary and value text), what
``monagent status`` says of the alert (in ``[agent] language``), the Alertmanager annotations and the
console line (both English by design: Alertmanager's own templates and the journal). Each alert of
tests/voice_cases.py is one message; the digest is three.

The golden files are tests/golden/voice.en.md and voice.zh.md. After a deliberate wording change,
regenerate them with ``MONAGENT_UPDATE_GOLDEN=1 python -m pytest tests/test_voice.py`` and review the
diff like code (tests/golden/README.md).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Dict, List, Set

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from voice_cases import cases

from monagent.api import Formatter, Metric, Result, Status, Text, Threshold
from monagent.events import Event
from monagent.notify.alertmanager import event_annotations
from monagent.notify.chat_text import Style, render
from monagent.notify.coalesce import Batch, Item
from monagent.notify.console import format_line
from monagent.notify.webhook import event_json
from monagent.oneshot import judge
from monagent.wording import describe, event_summary

GOLDEN = Path(__file__).resolve().parent / "golden"
ZONES = {"en": "UTC", "zh": "Asia/Shanghai"}


def outputs(language: str) -> Dict[str, str]:
    """Case name -> every output of that case, as one reviewed text."""
    fmt = Formatter(language, ZONES[language])
    style = Style(language, ZONES[language])
    out = {}
    for name, batch in cases().items():
        message = render(batch, style)
        parts = [f"### dingtalk title\n\n{message.title}", f"### dingtalk text\n\n{message.text}"]
        hooks = [event_json(item, fmt) for item in batch.items]
        parts.append("### webhook events\n\n" + "\n".join(f"- {e['summary']} | {e['value_text']}" for e in hooks))
        parts.append("### status\n\n" + "\n".join(f"- {event_summary(fmt, item.event)}" for item in batch.items))
        if language == "en":
            notes = [dict(event_annotations(item.event)) for item in batch.items]
            parts.append(
                "### alertmanager annotations\n\n" + "\n".join(f"- {a['summary']}\n  {a.get('description', '')}" for a in notes)
            )
            parts.append("### console\n\n" + "\n".join(format_line(item.event) for item in batch.items))
        out[name] = "\n\n".join(parts)
    return out


def as_file(rendered: Dict[str, str]) -> str:
    return "".join(f"## {name}\n\n{text}\n\n" for name, text in rendered.items())


@pytest.mark.parametrize("language", ["en", "zh"])
def test_every_output_in_both_languages_matches_the_reviewed_golden_file(language):
    path = GOLDEN / f"voice.{language}.md"
    text = as_file(outputs(language))
    if os.environ.get("MONAGENT_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{path.name} differs: review, then regenerate (tests/golden/README.md)"


_EXPONENT = re.compile(r"\d\.?\d*e[+-]?\d+", re.IGNORECASE)
_BARE_BYTES = re.compile(r"(?<![\w./:#-])\d{5,}(?:\.\d+)?\s?B?(?![\w./:-])")  # 524288000, 524288000B


@pytest.mark.parametrize("language", ["en", "zh"])
def test_no_output_shows_a_raw_float_or_a_byte_count_without_a_unit(language):
    for name, text in outputs(language).items():
        body = "\n".join(line for line in text.splitlines() if not line.startswith("> "))  # kernel log lines as written
        body = re.sub(r"<font color=#\w+>", "", body)
        assert not _EXPONENT.search(body), (name, _EXPONENT.search(body))
        assert not _BARE_BYTES.search(body), (name, _BARE_BYTES.search(body))


# ASCII that a Chinese message may carry: what came from the machine (host, check, subject and metric
# names, the check type, fact values and every argument of a reason: paths, process names, kernel and
# plugin text as written), units, and the product and technical terms the zh catalogue keeps in
# English as Chinese operators write them. Anything else is English where Chinese belongs.
_TERMS = {
    "B", "KiB", "MiB", "GiB", "TiB", "ms", "s", "CST", "UTC",  # units ("1501/s"), zone abbreviations
    "R",  # "makedumpfile -R", a command to run
    "monagent", "agent", "OOM", "killer", "pid", "CPU", "iowait", "steal", "HTTP", "makedumpfile", "crash",
    "core", "statfs", "FUSE", "RCU", "EDAC", "bank", "unit", "apport", "cgroup", "UID", "oom_score_adj",
}  # fmt: skip
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_MARKUP = re.compile(r"<font color=#[0-9A-F]{6}>|</font>")


def _machine_words(event: Event) -> Set[str]:
    """Every word of the machine's own data in ``event``: names, facts, the arguments of its reason."""
    data: List[str] = [event.host, event.key.check, event.key.subject, event.key.metric, event.check_type]
    data += [str(v) for v in event.facts.values() if isinstance(v, str)]

    def walk(value: object) -> None:
        if isinstance(value, Text):
            data.append(value.fallback)
            for arg in value.args.values():
                walk(arg)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)
        elif isinstance(value, str):
            data.append(value)

    walk(event.reason)
    return set(_WORD.findall(" ".join(data)))


def _english_words(text: str, allowed: Set[str]) -> List[str]:
    body = []
    for line in _MARKUP.sub("", text).replace("\\", "").splitlines():
        if line.startswith("> ") or line.startswith("### "):
            continue  # kernel log lines as the kernel wrote them; our section headings
        body.append(line)
    return [w for w in _WORD.findall("\n".join(body)) if w not in allowed and w not in _TERMS]


def test_no_chinese_output_carries_an_english_sentence():
    found = {}
    for name, text in outputs("zh").items():
        allowed = set().union(*(_machine_words(item.event) for item in cases()[name].items))
        words = _english_words(text, allowed)
        if words:
            found[name] = words
    assert found == {}


def test_the_english_scan_finds_an_english_reason_in_a_chinese_message():
    """The scan above is not blind: an English text where a Chinese one belongs is found."""
    from events_factory import event

    said = "0 running, expected >= 1"
    english = event(check="nginx", subject="nginx", metric="status", value=None, threshold=None, reason=said)
    text = render(Batch((Item(english, (1,)),)), Style("zh", "UTC")).text
    assert _english_words(text, {"web01", "nginx", "status", "disk"}) == ["running", "expected", "running", "expected"]


VALUES = st.one_of(
    st.floats(min_value=-1e15, max_value=1e15, allow_nan=False, allow_infinity=False),
    st.integers(min_value=0, max_value=1 << 60).map(float),
)


@settings(max_examples=60, deadline=None)
@given(VALUES, st.sampled_from(["B", "B/s", "s", "%", "", "/s", "req"]))
def test_every_output_shows_the_same_rounded_quantity(value, unit):
    from events_factory import event

    firing = event(value=value, unit=unit, threshold=None, check="q", subject="", metric="m")
    said = Formatter("en").value(value, unit)
    item = Item(firing, (1,))
    assert Formatter("zh").value(value, unit) in render(Batch((item,)), Style("zh", "UTC")).text.replace("\\_", "_")
    shown = {
        "dingtalk en": render(Batch((item,)), Style("en", "UTC")).text,
        "webhook": event_json(item)["value_text"],
        "alertmanager": dict(event_annotations(firing)).get("description", ""),
        "console": format_line(firing),
        "check": judge(Result(metrics=(Metric("m", value, unit),)), {"m": Threshold(critical=None)}).summary,
        "status": describe(Formatter("en"), metric="m", value=value, unit=unit),
    }
    assert Formatter("zh").value(value, unit) in event_json(item, Formatter("zh"))["value_text"]
    for output, text in shown.items():
        assert said in text.replace("\\_", "_"), (output, said, text)
    assert Status.OK == judge(Result(metrics=(Metric("m", value, unit),)), {}).status
