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
        (300, "5m", "5分钟"),
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
    reason = Text("notice.restarted", {"down": 7500})
    assert EN.text(reason) == "agent restarted after 2h05m of downtime"
    assert ZH.text(reason) == "agent 已重启，此前停止运行了 2小时5分"
    assert EN.say("growth.rate", rate=1.25) == "1.25%/h"


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


def test_every_built_in_check_ships_each_of_its_texts_in_both_languages_with_the_same_fields():
    from monagent.loader import Registry

    registry = Registry([])
    for name, _source in registry.available():
        cls = registry.resolve(name)
        assert cls is not None, name
        for message_id, by_language in cls.texts.items():
            assert set(by_language) == set(catalogue.LANGUAGES), (name, message_id)
            fields = {lang: set(re.findall(r"\{(\w+)", template)) for lang, template in by_language.items()}
            assert fields["zh"] == fields["en"], (name, message_id)
            assert catalogue.lookup("zh", message_id) == by_language["zh"], (name, message_id)


def test_the_engine_catalogue_holds_no_check_texts():
    checks = ("oom.", "process.", "disk.", "memory.", "cpu.", "kdump.", "pstore.", "kernel_log.", "systemd_units.", "nagios.")
    assert [k for k in catalogue.LANGUAGES["en"] if k.startswith(checks) or k.startswith("fact.")] == []


@pytest.mark.parametrize(
    "texts, said",
    [
        ({"q.x": {"zh": "只有中文"}}, r"Broken.texts\['q.x'\] has no English text"),
        ({"q.x": {"en": "x", "fr": "x"}}, r"Broken.texts\['q.x'\]\['fr'\]: a template string per language \(en, zh\)"),
        ({"critical": {"en": "x"}}, "'critical' is one of monagent's own ids"),
        (["q.x"], "Broken.texts must be a dict"),
    ],
)
def test_a_check_whose_texts_are_malformed_is_refused_when_its_class_is_defined(texts, said):
    with pytest.raises((TypeError, ValueError), match=said):
        type("Broken", (Check,), {"texts": texts})


def test_a_plugin_file_with_malformed_texts_is_reported_by_the_loader_naming_the_file(tmp_path):
    from monagent.loader import Registry

    checks_d = tmp_path / "checks.d"
    checks_d.mkdir(mode=0o755)
    plugin = checks_d / "bad_words.py"
    plugin.write_text(
        "from monagent.api import Check\n\n"
        "class BadWords(Check):\n    texts = {'bad_words.x': {'zh': '只有中文'}}\n\n"
        "CHECK = BadWords\n"
    )
    plugin.chmod(0o644)
    registry = Registry([checks_d])
    registry.resolve("bad_words")  # a stand-in that reports the fault as UNKNOWN
    error = registry.infos["bad_words"].error
    assert "BadWords.texts['bad_words.x'] has no English text" in error, error
