"""The Nagios output format: ranges, perfdata, whole plugin output, and the line monagent prints."""

from __future__ import annotations

import math
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monagent.api import Direction, Metric, Status, Threshold
from monagent.nagios import (
    PerfDatum,
    Range,
    evaluate,
    flatten_results,
    format_nagios,
    format_number,
    parse_output,
    parse_perfdata,
)

# ---------------------------------------------------------------- ranges


@pytest.mark.parametrize(
    ("text", "alerting", "quiet"),
    [
        ("10", [-1, 10.5, 11], [0, 5, 10]),
        ("10:", [9.99, -3], [10, 11, 1e9]),
        ("~:10", [10.01, 11], [-1e9, 0, 10]),
        ("10:20", [9, 21, -1], [10, 15, 20]),
        ("@10:20", [10, 15, 20], [9.99, 20.01, -1]),
    ],
)
def test_each_range_form_of_the_guidelines_alerts_exactly_where_the_table_says(text, alerting, quiet):
    parsed = Range.parse(text)
    assert [parsed.alerts(v) for v in alerting] == [True] * len(alerting)
    assert [parsed.alerts(v) for v in quiet] == [False] * len(quiet)


def test_a_range_knows_its_start_end_and_whether_it_alerts_inside():
    assert Range.parse("10") == Range(0.0, 10.0, inside=False)
    assert Range.parse("10:") == Range(10.0, math.inf)
    assert Range.parse("~:10") == Range(-math.inf, 10.0)
    assert Range.parse("@10:20") == Range(10.0, 20.0, inside=True)
    assert Range.parse(" -1.5:2.5 ") == Range(-1.5, 2.5)


@pytest.mark.parametrize("text", ["10", "10:", "~:10", "10:20", "@10:20", "~:", "@~:3", "-5:5", "0.5:1.25", "@0:"])
def test_a_range_prints_back_as_the_same_nagios_text(text):
    assert str(Range.parse(text)) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'empty range ""'),
        ("@", 'empty range "@"'),
        ("abc", '"abc" is not a range such as 10, 10:, ~:10, 10:20 or @10:20'),
        ("1:2:3", '"1:2:3" is not a range such as 10, 10:, ~:10, 10:20 or @10:20'),
        ("20:10", 'range "20:10" starts above its end'),
        ("-5", 'range "-5" starts above its end'),
    ],
)
def test_a_bad_range_is_refused_with_the_reason(text, message):
    with pytest.raises(ValueError) as error:
        Range.parse(text)
    assert str(error.value) == message


def test_critical_is_judged_before_warning_and_an_undetermined_value_is_unknown():
    warning, critical = Range.parse("10"), Range.parse("20")
    assert evaluate(25, warning, critical) == Status.CRITICAL
    assert evaluate(-1, warning, critical) == Status.CRITICAL  # a plain "20" also fires below zero
    assert evaluate(15, warning, critical) == Status.WARNING
    assert evaluate(5, warning, critical) == Status.OK
    assert evaluate(None, warning, critical) == Status.UNKNOWN
    assert evaluate(99, None, None) == Status.OK


def _nagiosplugin():
    try:
        import nagiosplugin
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("nagiosplugin (the reference range parser) is not installed: pip install nagiosplugin")
    return nagiosplugin


_BOUND = st.one_of(st.integers(-50, 50), st.sampled_from([0.5, -2.25, 12.75]))


@st.composite
def _range_texts(draw):
    start = draw(st.one_of(st.none(), st.just("~"), _BOUND))
    end = draw(st.one_of(st.none(), _BOUND))
    if end is None and start is None:
        end = draw(_BOUND)
    if isinstance(start, (int, float)) and isinstance(end, (int, float)) and start > end:
        start, end = end, start
    at = "@" if draw(st.booleans()) else ""
    if start is None:
        return f"{at}{end}"
    return f"{at}{start}:{'' if end is None else end}"


@given(_range_texts(), st.lists(st.one_of(st.integers(-60, 60), st.floats(-60, 60)), min_size=1, max_size=8))
def test_the_range_parser_agrees_with_the_nagiosplugin_reference(text, values):
    try:
        reference = _nagiosplugin().Range(text)
    except ValueError:  # start above end: both refuse it
        with pytest.raises(ValueError):
            Range.parse(text)
        return
    ours = Range.parse(text)
    assert (ours.start, ours.end, ours.inside) == (reference.start, reference.end, reference.invert)
    assert [ours.alerts(v) for v in values] == [not reference.match(v) for v in values]


# ---------------------------------------------------------------- perfdata


def test_perfdata_fields_carry_value_unit_ranges_and_limits():
    data, notes = parse_perfdata("load1=0.230;5.000;10.000;0; '/var used'=93%;85;95;0;100 time=12ms;;@0:5")
    assert notes == ()
    assert data == (
        PerfDatum("load1", 0.23, "", Range(0, 5), Range(0, 10), 0.0, None),
        PerfDatum("/var used", 93.0, "%", Range(0, 85), Range(0, 95), 0.0, 100.0),
        PerfDatum("time", 12.0, "ms", None, Range(0, 5, inside=True)),
    )


def test_a_quoted_label_may_hold_spaces_equals_free_text_and_doubled_quotes():
    data, notes = parse_perfdata("'it''s a ''test'' label'=1 ''''=2 'semi;colon'=3")
    assert notes == ()
    assert [d.label for d in data] == ["it's a 'test' label", "'", "semi;colon"]
    assert [d.value for d in data] == [1.0, 2.0, 3.0]


def test_u_means_the_value_could_not_be_determined():
    (datum,), notes = parse_perfdata("temp=U;40;50")
    assert notes == ()
    assert datum.value is None
    assert datum.status() == Status.UNKNOWN
    assert datum.to_metric() == Metric("temp", None, "")


def test_empty_and_trailing_fields_may_be_left_out():
    data, notes = parse_perfdata("a=1 b=2;;;; c=3;;5 d=4;;;;10")
    assert notes == ()
    assert data == (
        PerfDatum("a", 1.0),
        PerfDatum("b", 2.0),
        PerfDatum("c", 3.0, critical=Range(0, 5)),
        PerfDatum("d", 4.0, maximum=10.0),
    )


def test_every_unit_of_measure_is_kept_and_min_max_may_repeat_it():
    data, _ = parse_perfdata("a=1s b=2us c=3KB d=4MB e=5TB f=6c g=7B h=23662166016B;;;0B;270552530944B")
    assert [(d.label, d.uom) for d in data] == [
        ("a", "s"),
        ("b", "us"),
        ("c", "KB"),
        ("d", "MB"),
        ("e", "TB"),
        ("f", "c"),
        ("g", "B"),
        ("h", "B"),
    ]
    assert (data[-1].value, data[-1].minimum, data[-1].maximum) == (23662166016.0, 0.0, 270552530944.0)


def test_numbers_may_be_negative_fractional_exponential_or_use_a_decimal_comma():
    data, notes = parse_perfdata("a=-1.5 b=.25 c=1e3 d=0,75 e=+2")
    assert notes == ()
    assert [d.value for d in data] == [-1.5, 0.25, 1000.0, 0.75, 2.0]


def test_malformed_fields_are_skipped_with_a_note_and_the_good_ones_kept():
    data, notes = parse_perfdata(
        "good=1;2;3;0;10 junk 'unclosed=4 =5 novalue= bad=abc range=3;x:y;@5:1 lim=1;;;low;high extra=1;2;3;4;5;6 good=9"
    )
    assert [(d.label, d.value) for d in data] == [("good", 1.0), ("range", 3.0), ("lim", 1.0), ("extra", 1.0)]
    assert data[1].warning is None and data[1].critical is None
    assert list(notes) == [
        'skipped "junk": no "=" after the label',
        'skipped "\'unclosed=4": the quoted label is not closed by "\'="',
        'skipped "=5": the label is empty',
        'skipped "novalue=": it has no value',
        'skipped "bad=abc": "abc" is not a number',
        'ignored the warning range of "range": "x:y" is not a range such as 10, 10:, ~:10, 10:20 or @10:20',
        'ignored the critical range of "range": range "@5:1" starts above its end',
        'ignored the minimum "low" of "lim": not a number',
        'ignored the maximum "high" of "lim": not a number',
        'ignored extra fields "6" of "extra"',
        'skipped a second "good": the label is already used',
    ]


@given(st.text(max_size=200))
def test_no_perfdata_text_makes_the_parser_raise(text):
    data, notes = parse_perfdata(text)
    assert all(isinstance(d, PerfDatum) for d in data)
    assert all(isinstance(n, str) for n in notes)


# ---------------------------------------------------------------- whole output


def test_the_first_line_splits_into_summary_and_perfdata():
    out = parse_output(
        "DISK OK - free space: / 81331MiB (78% inode=97%);| /=23662166016B;216442024755;243497277849;0;270552530944\n"
    )
    assert out.summary == "DISK OK - free space: / 81331MiB (78% inode=97%);"
    assert out.long_text == ""
    assert out.perfdata == (
        PerfDatum("/", 23662166016.0, "B", Range(0, 216442024755.0), Range(0, 243497277849.0), 0.0, 270552530944.0),
    )


def test_later_lines_are_long_text_until_a_bar_and_perfdata_after_it():
    out = parse_output(
        "DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968\n"
        "/ 15272 MB (77%);\n"
        "/boot 68 MB (69%);\n"
        "/home 69357 MB (27%);\n"
        "/var/log 819 MB (84%); | /boot=68MB;88;93;0;98\n"
        "/home=69357MB;253404;253409;0;253414 \n"
        "/var/log=818MB;970;975;0;980\n"
    )
    assert out.summary == "DISK OK - free space: / 3326 MB (56%);"
    assert out.long_text == "/ 15272 MB (77%);\n/boot 68 MB (69%);\n/home 69357 MB (27%);\n/var/log 819 MB (84%);"
    assert [d.label for d in out.perfdata] == ["/", "/boot", "/home", "/var/log"]
    assert out.metrics()[3] == Metric("/var/log", 818.0, "MB", 0.0, 980.0)


def test_perfdata_on_later_lines_is_not_glued_to_the_first_line_perfdata():
    out = parse_output("OK | a=1\nlong | b=2")
    assert [d.label for d in out.perfdata] == ["a", "b"]


def test_output_without_perfdata_or_without_anything_parses_to_a_summary_only():
    assert parse_output("PROCS OK: 80 processes\r\n") == parse_output("PROCS OK: 80 processes")
    assert parse_output("PROCS OK: 80 processes").summary == "PROCS OK: 80 processes"
    empty = parse_output("")
    assert (empty.summary, empty.long_text, empty.perfdata, empty.notes) == ("", "", (), ())


# ---------------------------------------------------------------- printing


def test_numbers_print_with_perfdata_digits_only():
    assert [format_number(v) for v in (0.0, 93.0, 0.23, -1.5, 1e-7, 12345678901.0, 1e20)] == [
        "0",
        "93",
        "0.23",
        "-1.5",
        "0.0000001",
        "12345678901",
        "100000000000000000000",
    ]


def test_format_nagios_prints_one_line_with_perfdata_and_monagent_thresholds_as_ranges():
    line = format_nagios(
        "root_disk",
        Status.CRITICAL,
        "/var 93% used (>= 90)",
        [
            ("/var used_percent", Metric("used_percent", 93.0, "%", 0.0, 100.0)),
            ("/var free_bytes", Metric("free_bytes", 7e9, "bytes")),
        ],
        {"used_percent": Threshold(warning=85, critical=90)},
    )
    assert line == (
        "root_disk CRITICAL: /var 93% used (>= 90) | '/var used_percent'=93%;85;90;0;100 '/var free_bytes'=7000000000B"
    )


def test_format_nagios_writes_u_for_a_missing_value_and_a_below_threshold_as_start_colon():
    line = format_nagios(
        "nginx",
        Status.OK,
        "1 running",
        [Metric("count", 1, ""), Metric("rate", None, "1/s")],
        {"count": Threshold(critical=1, direction=Direction.BELOW)},
    )
    assert line == "nginx OK: 1 running | count=1;;1: rate=U"


def test_format_nagios_keeps_the_line_one_line_and_without_a_stray_bar():
    line = format_nagios("x", Status.WARNING, "a | b\nc  d")
    assert line == "x WARNING: a / b c d"
    assert format_nagios("x", Status.UNKNOWN, "") == "x UNKNOWN"
    assert format_nagios("x", Status.OK, "fine", long_text="line 1\nline | 2\n") == "x OK: fine\nline 1\nline / 2"


def test_what_format_nagios_prints_parses_back_to_the_same_metrics():
    metrics = [
        ("it's / used", Metric("used", 93.5, "%", 0, 100)),
        Metric("load1", 0.25, ""),
        ("temp", Metric("temp", None, "", None, None)),
    ]
    line = format_nagios("c", Status.OK, "fine", metrics, {"used": Threshold(80, 90)})
    out = parse_output(line)
    assert out.summary == "c OK: fine"
    assert out.notes == ()
    assert out.metrics() == (Metric("it's / used", 93.5, "%", 0.0, 100.0), Metric("load1", 0.25, ""), Metric("temp", None, ""))
    assert out.perfdata[0].warning == Range(0, 80) and out.perfdata[0].critical == Range(0, 90)


def test_flatten_results_labels_each_metric_with_its_subject():
    from monagent.api import Result

    results = [Result(subject="/", metrics=(Metric("a", 1),)), Result(metrics=(Metric("b", 2), Metric("c", 3)))]
    assert flatten_results(results) == [("/ a", Metric("a", 1)), ("b", Metric("b", 2)), ("c", Metric("c", 3))]
    line = format_nagios("disk", Status.OK, "fine", flatten_results(results), {"a": Threshold(warning=5)})
    assert line == "disk OK: fine | '/ a'=1;5 b=2 c=3"
