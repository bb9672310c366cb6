"""The one formatter: units chosen as a person writes them, catalogue texts in each language."""

from __future__ import annotations

import re
from typing import ClassVar, Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monagent import catalogue
from monagent.api import Check, Formatter, Result, Text

EN = Formatter("en", "UTC")
ZH = Formatter("zh", "Asia/Shanghai")


@pytest.mark.parametrize(
    ("value", "unit", "said"),
    [
        (524_288_000, "B", "500 MiB"),
        (1_073_741_824, "B", "1 GiB"),
        (1_288_490_189, "B", "1.2 GiB"),
        (1_300_000_000, "B", "1.21 GiB"),
        (1023.99 * 1024**2, "B", "1 GiB"),
        (512, "B", "512 B"),
        (5.24288e8, "B/s", "500 MiB/s"),
        (0.012, "s", "12 ms"),
        (0.5, "s", "500 ms"),
        (12.5, "s", "12.5 s"),
        (7500, "s", "2h05m"),
        (1500.51, "/s", "1501/s"),
        (1.0, "/s", "1/s"),
        (93.0, "%", "93%"),
        (93.46, "%", "93.5%"),
        (0.04, "%", "0.04%"),
        (3, "", "3"),
        (0.333333, "", "0.333"),
    ],
)
def test_values_read_as_a_person_writes_them(value, unit, said):
    assert EN.value(value, unit) == said


@pytest.mark.parametrize(
    ("seconds", "en", "zh"),
    [
        (0, "0s", "0秒"),
        (0.012, "12 ms", "12毫秒"),
        (45, "45s", "45秒"),
        (90, "1m30s", "1分30秒"),
        (3600, "1h", "1小时"),
        (7500, "2h05m", "2小时5分"),
        (7201, "2h", "2小时"),
        (3 * 86400 + 4 * 3600 + 59, "3d04h", "3天4小时"),
    ],
)
def test_durations_in_both_languages(seconds, en, zh):
    assert (EN.duration(seconds), ZH.duration(seconds)) == (en, zh)


def test_thresholds_and_times_follow_the_language_and_zone():
    assert EN.threshold(">=", 95, "%") == ">= 95%"
    assert EN.threshold("<", 1, "") == "< 1"
    assert EN.threshold(">=", None) == ""
    assert EN.time(1_790_000_000) == "2026-09-21 14:13:20 UTC"
    assert ZH.time(1_790_000_000) == "2026-09-21 22:13:20 CST"


def test_catalogue_texts_fill_typed_fields_in_each_language():
    reason = Text("process.expected_min", {"n": 0, "min": 1})
    assert EN.text(reason) == "0 running, expected at least 1"
    assert ZH.text(reason) == "运行中 0 个，应至少 1 个"
    assert EN.say("disk.full_in", eta=12_000) == "full in about 3h20m"
    assert ZH.say("disk.full_in", eta=12_000) == "约3小时20分后写满"


class Spool(Check):
    texts: ClassVar[Mapping[str, Mapping[str, str]]] = {
        "spool.stuck": {"en": "{n} messages stuck, {size:bytes}", "zh": "积压 {n} 条消息，共 {size:bytes}"}
    }

    def run(self, ctx):
        return Result(status=None, reason=self.text("spool.stuck", n=3, size=2_097_152))


def test_a_plugin_ships_its_own_texts_in_both_languages():
    reason = Spool().run(None).reason
    assert isinstance(reason, Text)
    assert EN.text(reason) == "3 messages stuck, 2 MiB"
    assert ZH.text(reason) == "积压 3 条消息，共 2 MiB"
    assert Text.from_json(reason.to_json()) == reason


def test_a_plugin_text_only_in_english_is_shown_in_english_rather_than_not_at_all():
    reason = Text("x.only", {"n": 2}, {"en": "{n} left"})
    assert ZH.text(reason) == "2 left"


def test_free_text_is_shown_as_it_is_and_an_unknown_id_falls_back():
    assert ZH.text("CRITICAL - load average: 9.1") == "CRITICAL - load average: 9.1"
    assert ZH.text(Text("nowhere.known", fallback="as the check said")) == "as the check said"


def test_every_catalogue_has_the_same_ids_and_the_same_fields_as_english():
    english = catalogue.LANGUAGES["en"]
    for language, texts in catalogue.LANGUAGES.items():
        assert set(texts) == set(english), language
        for key, template in texts.items():
            assert set(re.findall(r"\{(\w+)", template)) == set(re.findall(r"\{(\w+)", english[key])), (language, key)


def test_an_unknown_language_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown language 'fr' .*en, zh"):
        Formatter("fr")


@given(
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e18, max_value=1e18),
    st.sampled_from(["B", "B/s", "s", "%", "", "/s", "req"]),
)
def test_no_value_is_shown_with_an_exponent_or_a_bare_byte_count(value, unit):
    for fmt in (EN, ZH):
        text = fmt.value(value, unit)
        assert not re.search(r"\de[+-]?\d", text), text
        if unit.startswith("B"):
            assert re.search(r"\d (B|KiB|MiB|GiB|TiB|PiB|EiB)", text), text
