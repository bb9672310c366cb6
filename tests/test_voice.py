"""One voice: the same alerts through every output, in both languages, against reviewed golden files.

Outputs: the DingTalk markdown (title and text), the webhook's events (summary and value text), the
Alertmanager annotations and the console line (both English by design). Each alert of
tests/voice_cases.py is one message; the digest is three.

The golden files are tests/golden/voice.en.md and voice.zh.md. After a deliberate wording change,
regenerate them with ``MONAGENT_UPDATE_GOLDEN=1 python -m pytest tests/test_voice.py`` and review the
diff like code (tests/golden/README.md).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Dict, List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from voice_cases import cases

from monagent.api import Formatter, Metric, Result, Status, Threshold
from monagent.judge import judge
from monagent.notify.alertmanager import event_annotations
from monagent.notify.coalesce import Batch, Item
from monagent.notify.console import format_line
from monagent.notify.markdown import Style, render
from monagent.notify.webhook import event_json

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


# ASCII that a Chinese message may carry: names from the machine (hosts, checks, subjects, paths,
# processes), kernel text, units, and product and tool names. Anything else is an English sentence.
_ALLOWED = {
    "web01", "root_disk", "mem", "cpu", "api", "nginx", "units", "cron", "service", "nagios_pg", "kdump",
    "oom", "monagent", "agent", "disk", "memory", "process", "systemd_units", "http_probe", "nagios", "java",
    "bash", "makedumpfile", "crash", "pid", "used_percent", "available_bytes", "usage_percent",
    "latency_seconds", "errors", "status", "occurrence", "restart", "var", "usr", "lib", "plugins",
    "check_pgsql", "system", "CST", "UTC", "MiB", "GiB", "KiB", "B", "ms", "h", "font", "color",
    "FF0000", "FF9900", "008000", "E90FF", "sysrq_handle_crash", "x11", "x20", "fc32", "x86_64", "rc6", "git0",
    "amd64", "rss",
}  # fmt: skip
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_MACHINE_TEXT = re.compile(
    "|".join(
        [
            r"Kernel panic - not syncing: sysrq triggered crash",  # kernel text
            r"cannot run \S+: No such file or directory",  # a plugin's own words
            r"cron\.service failed \(exit-code\)",  # systemd's words
            r"OOM killer|anon-rss|total_since_boot|oom_score_adj|total_vm|file_rss|shmem_rss",  # kernel terms
            r"makedumpfile -R",  # a command to run
            r"(/[\w.:-]+)+",  # paths
        ]
    )
)


def _english_words(text: str) -> List[str]:
    body = []
    for line in text.replace("\\_", "_").replace("\\#", "#").splitlines():
        if line.startswith("> ") or line.startswith("### "):
            continue  # kernel log lines; our section headings
        body.append(_MACHINE_TEXT.sub("", line))
    return [w for w in _WORD.findall("\n".join(body)) if w not in _ALLOWED]


def test_no_chinese_output_carries_an_english_sentence():
    found = {name: words for name, text in outputs("zh").items() if (words := _english_words(text))}
    assert found == {}


VALUES = st.one_of(
    st.floats(min_value=-1e15, max_value=1e15, allow_nan=False, allow_infinity=False),
    st.integers(min_value=0, max_value=1 << 60).map(float),
)


@settings(max_examples=60, deadline=None)
@given(VALUES, st.sampled_from(["B", "B/s", "s", "%", "", "/s", "req"]))
def test_every_output_shows_the_same_rounded_quantity(value, unit):
    from dingtalk_helpers import event

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
    }
    for output, text in shown.items():
        assert said in text.replace("\\_", "_"), (output, said, text)
    assert Status.OK == judge(Result(metrics=(Metric("m", value, unit),)), {}).status
