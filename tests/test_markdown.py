"""The exact markdown of every message kind, in Chinese and English; escaping; the body budget."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest
from events_factory import T0, crash_event, event, notice, process_down
from hypothesis import example, given, settings
from hypothesis import strategies as st
from monagent.checks.disk import DiskCheck
from monagent.checks.process import ProcessCheck

from monagent.api import Status
from monagent.events import Event, EventKind
from monagent.notify.chat_text import Style, escape, render, sparkline
from monagent.notify.coalesce import Batch, HeldReason, Item

EXCERPT = "\n".join(
    [  # tests/data is not needed: eight whole lines of syzbot report 480 (kdump fixtures)
        "BUG: kernel NULL pointer dereference, address: 0000000000000086",
        "#PF: supervisor instruction fetch in kernel mode",
        "#PF: error_code(0x0010) - not-present page",
        "Oops: 0010 [#1] PREEMPT SMP KASAN",
        "CPU: 1 PID: 9969 Comm: syz-executor.0 Not tainted 5.6.0-rc6-syzkaller #0",
        "RIP: 0010:0x86",
        "RSP: 0018:ffffc90001b9f998 EFLAGS: 00010086",
        "Call Trace:",
        " ? handle_external_interrupt_irqoff+0x154/0x280",
    ]
)


SYZBOT_FACTS = {  # as an entry of event format 1 has them: strings, sizes already in words
    "reason": "BUG: kernel NULL pointer dereference, address: 0000000000000086",
    "function": "0x86",
    "comm": "syz-executor.0",
    "pid": "9969",
    "kernel": "5.6.0-rc6-syzkaller",
    "running_kernel": "5.6.0-rc7",
    "taint": "G",
    "test_crash": "false",
    "dump_status": "complete",
    "dump_path": "/var/crash/127.0.0.1-2026-09-21-13:30:02/dump.202609211330",
    "dump_size": "1.2 GiB",
    "dump_format": "kdump-compressed",
    "free_space": "48 GiB",
    "excerpt": EXCERPT,
}


def syzbot_crash() -> Event:
    return crash_event(
        id="crash-1",
        subject="/var/crash/127.0.0.1-2026-09-21-13:30:02",
        metric="dump",
        summary="kernel crash",
        since=None,
        facts=SYZBOT_FACTS,
    )


def firing_event() -> Event:
    return event(trend=(80, 82, 85, 88, 90, 93), facts={"time_to_full": "3h20m", "trend": "+1.2%/h"})


def batches() -> dict:
    flap = event(
        EventKind.FLAP_START,
        check="nginx",
        subject="",
        metric="count",
        value=None,
        threshold=None,
        since=None,
        severity=Status.WARNING,
        check_type="process",
        summary="nginx process count changes state too often (34% of the last 21 samples)",
    )
    cpu_resolved = event(
        EventKind.RESOLVED,
        check="cpu",
        subject="",
        metric="usage_percent",
        value=20.0,
        threshold=90.0,
        incident="inc-9",
        duration=600.0,
        check_type="cpu",
    )
    mem = event(
        check="mem",
        subject="",
        metric="used_percent",
        severity=Status.WARNING,
        value=88.0,
        threshold=85.0,
        incident="inc-5",
        check_type="memory",
    )
    return {
        "firing": Batch((Item(firing_event(), (1,)),)),
        "escalated": Batch((Item(event(EventKind.ESCALATED, value=96.0, threshold=95.0, seq=2), (2,)),)),
        "reminder": Batch((Item(event(EventKind.REMINDER, seq=3, time=T0 + 7200), (3, 4, 5), merged=3),)),
        "resolved": Batch(
            (Item(event(EventKind.RESOLVED, value=71.0, seq=4, time=T0 + 1800, since=T0 - 300, duration=2100.0), (6,)),)
        ),
        "crash": Batch((Item(syzbot_crash(), (7,)),)),
        "flapping": Batch((Item(flap, (8,)),)),
        "notice": Batch((Item(notice(), (9,)),)),
        "digest": Batch(
            (Item(firing_event(), (1,)), Item(cpu_resolved, (2,)), Item(mem, (3,))),
            held=(HeldReason.LOCKOUT,),
            held_since=T0 - 600,
            cancelled=1,
            cancelled_events=2,
        ),
    }


ZH = Style("zh", "Asia/Shanghai", keywords=("监控",), mentions={"critical": ("13800000000",)})
EN = Style("en", "UTC", mentions={"critical": ("13800000000",)})

EXPECTED_ZH = {
    "firing": (
        "监控 [告警:1] web01 disk /var 93%",
        r"""#### 监控 [告警:1] web01 disk /var 93%

**<font color=#FF0000>严重</font> 告警** disk /var 93%

- 主机：web01
- 检查：disk
- 对象：/var
- 指标：used\_percent
- 当前值：93%（阈值 >= 90%）
- 开始时间：2026-09-21 22:08:20 CST
- 趋势：▁▂▄▅▆█
- 预计写满：3小时20分
- 增长速度：+1.2%/h

@13800000000""",
    ),
    "escalated": (
        "监控 [告警:1] web01 disk /var 96%",
        r"""#### 监控 [告警:1] web01 disk /var 96%

**<font color=#FF0000>严重</font> 告警升级** disk /var 96%

- 主机：web01
- 检查：disk
- 对象：/var
- 指标：used\_percent
- 当前值：96%（阈值 >= 95%）
- 开始时间：2026-09-21 22:08:20 CST

@13800000000""",
    ),
    "reminder": (
        "监控 [告警:1] web01 disk /var 93%",
        r"""#### 监控 [告警:1] web01 disk /var 93%

**<font color=#FF0000>严重</font> 告警持续 ×3** disk /var 93%

- 主机：web01
- 检查：disk
- 对象：/var
- 指标：used\_percent
- 当前值：93%（阈值 >= 90%）
- 开始时间：2026-09-22 00:08:20 CST""",
    ),
    "resolved": (
        "监控 [已恢复] web01 disk /var 71%",
        r"""#### 监控 [已恢复] web01 disk /var 71%

**<font color=#008000>已恢复</font>** disk /var 71%

- 主机：web01
- 检查：disk
- 对象：/var
- 指标：used\_percent
- 当前值：71%（阈值 >= 90%）
- 原级别：严重
- 开始时间：2026-09-21 22:08:20 CST
- 恢复时间：2026-09-21 22:43:20 CST
- 持续时间：35分钟""",
    ),
    "crash": (
        "监控 [内核崩溃] web01: BUG: kernel NULL pointer dereference, address: 0000000000000086",
        r"""#### 监控 [内核崩溃] web01: BUG: kernel NULL pointer dereference, address: 0000000000000086

**<font color=#FF0000>严重</font> 内核崩溃** BUG: kernel NULL pointer dereference, address: 0000000000000086

- 主机：web01
- 发现时间：2026-09-21 22:13:20 CST
- 位置：0x86
- 进程：syz-executor.0（pid 9969）
- 内核：5.6.0-rc6-syzkaller（当前运行：5.6.0-rc7）
- 污染标记：G
- 转储：/var/crash/127.0.0.1-2026-09-21-13:30:02/dump.202609211330、1.2 GiB、kdump-compressed
- 完整性：完整
- 剩余空间：48 GiB

日志摘录：

> BUG: kernel NULL pointer dereference, address: 0000000000000086

> \#PF: supervisor instruction fetch in kernel mode

> \#PF: error\_code(0x0010) - not-present page

> Oops: 0010 \[#1\] PREEMPT SMP KASAN

> CPU: 1 PID: 9969 Comm: syz-executor.0 Not tainted 5.6.0-rc6-syzkaller #0

> RIP: 0010:0x86

> Call Trace:

> ? handle\_external\_interrupt\_irqoff+0x154/0x280

@13800000000""",
    ),
    "flapping": (
        "监控 [抖动] web01 nginx",
        r"""#### 监控 [抖动] web01 nginx

**<font color=#FF9900>警告</font> 状态抖动** nginx

- 主机：web01
- 检查：nginx（process）
- 指标：count
- 时间：2026-09-21 22:13:20 CST
- 说明：nginx process count changes state too often (34% of the last 21 samples)""",
    ),
    "notice": (
        "监控 [通知] web01 agent restarted after 2h of downtime",
        r"""#### 监控 [通知] web01 agent restarted after 2h of downtime

**<font color=#1E90FF>信息</font> 通知** agent restarted after 2h of downtime

- 主机：web01
- 检查：monagent
- 时间：2026-09-21 22:13:20 CST""",
    ),
    "digest": (
        "监控 [汇总] web01 告警 2 · 已恢复 1",
        r"""#### 监控 [汇总] web01 告警 2 · 已恢复 1

自 2026-09-21 22:03:20 CST 起共 5 条事件，因钉钉限流锁定延后发送。其间已自行恢复、未列出的告警：1 条。

- <font color=#FF0000>严重</font> 告警 disk /var 93%（阈值 >= 90%） · 2026-09-21 22:13:20 CST
- <font color=#008000>已恢复</font> cpu 20%（阈值 >= 90%） · 持续 10分钟 · 2026-09-21 22:13:20 CST
- <font color=#FF9900>警告</font> 告警 mem 88%（阈值 >= 85%） · 2026-09-21 22:13:20 CST

@13800000000""",
    ),
}

EXPECTED_EN = {
    "firing": (
        "[FIRING:1] web01 disk /var 93%",
        r"""#### [FIRING:1] web01 disk /var 93%

**<font color=#FF0000>CRITICAL</font> firing** disk /var 93%

- Host: web01
- Check: disk
- Subject: /var
- Metric: used\_percent
- Value: 93% (threshold >= 90%)
- Since: 2026-09-21 14:08:20 UTC
- Trend: ▁▂▄▅▆█
- Full in: 3h20m
- Growth: +1.2%/h

@13800000000""",
    ),
    "escalated": (
        "[FIRING:1] web01 disk /var 96%",
        r"""#### [FIRING:1] web01 disk /var 96%

**<font color=#FF0000>CRITICAL</font> escalated** disk /var 96%

- Host: web01
- Check: disk
- Subject: /var
- Metric: used\_percent
- Value: 96% (threshold >= 95%)
- Since: 2026-09-21 14:08:20 UTC

@13800000000""",
    ),
    "reminder": (
        "[FIRING:1] web01 disk /var 93%",
        r"""#### [FIRING:1] web01 disk /var 93%

**<font color=#FF0000>CRITICAL</font> still firing ×3** disk /var 93%

- Host: web01
- Check: disk
- Subject: /var
- Metric: used\_percent
- Value: 93% (threshold >= 90%)
- Since: 2026-09-21 16:08:20 UTC""",
    ),
    "resolved": (
        "[RESOLVED] web01 disk /var 71%",
        r"""#### [RESOLVED] web01 disk /var 71%

**<font color=#008000>RESOLVED</font>** disk /var 71%

- Host: web01
- Check: disk
- Subject: /var
- Metric: used\_percent
- Value: 71% (threshold >= 90%)
- Severity was: CRITICAL
- Since: 2026-09-21 14:08:20 UTC
- Resolved at: 2026-09-21 14:43:20 UTC
- Duration: 35m""",
    ),
    "crash": (
        "[kernel crash] web01: BUG: kernel NULL pointer dereference, address: 0000000000000086",
        r"""#### [kernel crash] web01: BUG: kernel NULL pointer dereference, address: 0000000000000086

**<font color=#FF0000>CRITICAL</font> kernel crash** BUG: kernel NULL pointer dereference, address: 0000000000000086

- Host: web01
- Found at: 2026-09-21 14:13:20 UTC
- Where: 0x86
- Process: syz-executor.0 (pid 9969)
- Kernel: 5.6.0-rc6-syzkaller (running: 5.6.0-rc7)
- Taint: G
- Dump: /var/crash/127.0.0.1-2026-09-21-13:30:02/dump.202609211330, 1.2 GiB, kdump-compressed
- Status: complete
- Free space: 48 GiB

Log excerpt:

> BUG: kernel NULL pointer dereference, address: 0000000000000086

> \#PF: supervisor instruction fetch in kernel mode

> \#PF: error\_code(0x0010) - not-present page

> Oops: 0010 \[#1\] PREEMPT SMP KASAN

> CPU: 1 PID: 9969 Comm: syz-executor.0 Not tainted 5.6.0-rc6-syzkaller #0

> RIP: 0010:0x86

> Call Trace:

> ? handle\_external\_interrupt\_irqoff+0x154/0x280

@13800000000""",
    ),
    "flapping": (
        "[FLAPPING] web01 nginx",
        r"""#### [FLAPPING] web01 nginx

**<font color=#FF9900>WARNING</font> flapping started** nginx

- Host: web01
- Check: nginx (process)
- Metric: count
- Time: 2026-09-21 14:13:20 UTC
- Summary: nginx process count changes state too often (34% of the last 21 samples)""",
    ),
    "notice": (
        "[NOTICE] web01 agent restarted after 2h of downtime",
        r"""#### [NOTICE] web01 agent restarted after 2h of downtime

**<font color=#1E90FF>INFO</font> notice** agent restarted after 2h of downtime

- Host: web01
- Check: monagent
- Time: 2026-09-21 14:13:20 UTC""",
    ),
    "digest": (
        "[DIGEST] web01 2 firing · 1 resolved",
        r"""#### [DIGEST] web01 2 firing · 1 resolved

5 events since 2026-09-21 14:03:20 UTC, held back by a rate-limit lockout. Fired and resolved in between (not listed): 1.

- <font color=#FF0000>CRITICAL</font> firing disk /var 93% (threshold >= 90%) · 2026-09-21 14:13:20 UTC
- <font color=#008000>RESOLVED</font> cpu 20% (threshold >= 90%) · after 10m · 2026-09-21 14:13:20 UTC
- <font color=#FF9900>WARNING</font> firing mem 88% (threshold >= 85%) · 2026-09-21 14:13:20 UTC

@13800000000""",
    ),
}


@pytest.mark.parametrize("kind", list(EXPECTED_ZH))
def test_each_message_kind_renders_exactly_in_chinese(kind):
    message = render(batches()[kind], ZH)
    assert (message.title, message.text) == EXPECTED_ZH[kind]


@pytest.mark.parametrize("kind", list(EXPECTED_EN))
def test_each_message_kind_renders_exactly_in_english(kind):
    message = render(batches()[kind], EN)
    assert (message.title, message.text) == EXPECTED_EN[kind]


def test_two_firing_alerts_are_counted_in_the_title_and_listed_worst_first():
    warning = event(subject="/home", incident="inc-2", severity=Status.WARNING, value=86.0, threshold=85.0)
    message = render(Batch((Item(firing_event(), (1,)), Item(warning, (2,)))), EN)
    assert message.title == "[FIRING:2] web01 disk /var 93%"
    assert message.text.index("disk /var 93%\n") < message.text.index("disk /home 86%\n")


def test_the_keyword_is_added_to_the_title_only_when_the_title_lacks_every_keyword():
    assert render(batches()["firing"], Style("zh", "UTC", keywords=("告警",))).title == "[告警:1] web01 disk /var 93%"
    assert render(batches()["firing"], Style("en", "UTC", keywords=("ops",))).title.startswith("ops [FIRING:1]")


def test_a_test_crash_says_so_once_in_the_title_and_in_the_severity_line_in_each_language():
    crash = syzbot_crash()
    crash = replace(crash, facts={**crash.facts, "test_crash": True})
    for style, tag, badge in ((EN, "[TEST crash]", ">TEST</font>"), (ZH, "[测试崩溃]", ">测试</font>")):
        message = render(Batch((Item(crash, (1,)),)), style)
        assert message.title.endswith(f"{tag} web01: BUG: kernel NULL pointer dereference, address: 0000000000000086")
        assert badge in message.text.splitlines()[2]  # the severity line
        assert "test crash" not in message.text and "测试触发" not in message.text


def test_the_title_is_plain_text_and_only_the_body_is_escaped():
    odd = event(check="disk_[#1]", subject="/srv/a_b", metric="used_percent")
    message = render(Batch((Item(odd, (1,)),)), EN)
    assert message.title == "[FIRING:1] web01 disk_[#1] /srv/a_b 93%"
    assert message.text.startswith("#### [FIRING:1] web01 disk\\_\\[#1\\] /srv/a\\_b 93%")


def test_machine_text_cannot_forge_markdown_headings_links_html_or_mentions():
    hostile = "x\n#### [FIRING:0] fake <font color=#008000>RESOLVED</font> [click](http://evil) **bold** `code`"
    text = render(Batch((Item(event(subject=hostile), (1,)),)), EN).text
    assert "\n#### [FIRING:0]" not in text
    assert re.search(r"(?<!\\)<font color=#008000>", text) is None
    assert "[click](" not in text and "**bold**" not in text and "`code`" not in text
    assert (
        r"- Subject: x #### \[FIRING:0\] fake \<font color=#008000>RESOLVED\</font> \[click\](http://evil) "
        r"\*\*bold\*\* \`code\`" in text
    )


def test_escaping_keeps_one_line_and_defangs_links_in_the_reduced_form():
    assert escape("a\r\nb\u202ec") == "a b c"
    assert escape("see http://example.com/x", defang=True) == r"see http\[:\]//example.com/x"
    assert escape("- not a list", line_start=True) == r"\- not a list"


def test_the_reduced_form_drops_the_log_excerpt():
    batch = batches()["crash"]
    reduced = Batch(batch.items, reduced=True)
    assert "> " in render(batch, EN).text
    assert "Log excerpt" not in render(reduced, EN).text


def test_hex_register_lines_are_left_out_of_the_crash_excerpt():
    text = render(batches()["crash"], EN).text
    assert "RSP:" not in text
    assert "> RIP: 0010:0x86" in text


def test_a_sparkline_spans_the_range_of_the_trend():
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert sparkline([5, 5, 5]) == "▄▄▄"
    assert sparkline([1.0]) == ""


def test_times_follow_the_configured_time_zone():
    shanghai = render(batches()["firing"], Style("en", "Asia/Shanghai")).text
    assert "- Since: 2026-09-21 22:08:20 CST" in shanghai


def test_past_the_budget_items_become_lines_and_the_rest_is_summed_up_by_severity():
    items = [Item(event(subject=f"/mnt/{i}", incident=f"c{i}"), (i,)) for i in range(40)]
    items += [Item(event(subject=f"/w/{i}", incident=f"w{i}", severity=Status.WARNING), (100 + i,)) for i in range(30)]
    items += [Item(event(EventKind.RESOLVED, subject=f"/r/{i}", incident=f"r{i}"), (200 + i,)) for i in range(20)]
    message = render(Batch(tuple(items), budget=6000), Style("en", "UTC"))
    assert message.listed == 53  # one line per item once the full blocks do not all fit
    assert "\n- <font color=#FF0000>CRITICAL</font> firing disk /mnt/0 93% (threshold >= 90%) · " in message.text
    assert message.text.endswith("+37 more (17 warning, 20 resolved)")
    assert len(json.dumps({"title": message.title, "text": message.text}, ensure_ascii=False).encode()) <= 6000


def test_the_more_line_in_chinese():
    items = [Item(event(subject=f"/w/{i}", incident=f"w{i}", severity=Status.WARNING), (i,)) for i in range(60)]
    message = render(Batch(tuple(items), budget=3000), ZH)
    assert message.text.endswith(f"+{message.omitted} 条未列出（警告 {message.omitted}、已恢复 0）")


def test_earlier_dropped_events_are_reported_in_the_next_message():
    text = render(Batch(batches()["firing"].items, dropped=7), EN).text
    assert "7 earlier events were dropped (outbox bound reached or rejected by the receiver)" in text


words = st.text(alphabet=st.sampled_from(list("磁盘空间不足进程崩溃abcXYZ/_*[]<>#-\n 0123456789")), max_size=400)


@settings(max_examples=60, deadline=None)
@given(
    subjects=st.lists(words, min_size=1, max_size=120),
    excerpt=words,
    budget=st.integers(2000, 20_000),
    digest=st.booleans(),
    chinese=st.booleans(),
)
@example(  # issue 11: 2,001 bytes for a 2,000-byte budget (the request's JSON wrapper was not counted)
    subjects=["不", "00", "0<", "00不", "0*不", "0000<", "000000*不不", "00000000000<<<<<<******不不不不不不不不不不"] * 2,
    excerpt="",
    budget=2000,
    digest=True,
    chinese=False,
)
def test_every_body_fits_its_budget_whatever_the_text(subjects, excerpt, budget, digest, chinese):
    items = [
        Item(event(subject=s, summary=s * 3, incident=f"i{n}", facts={"excerpt": excerpt * 5}), (n,))
        for n, s in enumerate(subjects)
    ]
    batch = Batch(tuple(items), budget=budget, held=(HeldReason.RATE_LIMIT,) if digest else ())
    message = render(batch, ZH if chinese else EN)
    body = json.dumps(
        {"msgtype": "markdown", "markdown": {"title": message.title, "text": message.text}},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    assert len(body) <= budget
    assert message.listed + message.omitted == len(items)


def test_an_occurrence_other_than_a_crash_lists_its_facts():
    oom = event(
        EventKind.OCCURRENCE,
        check="oom",
        subject="",
        metric="kill",
        value=None,
        threshold=None,
        since=None,
        check_type="oom",
        summary="OOM killer killed java (pid 4242)",
        facts={"comm": "java", "pid": "4242", "rss": "3.1 GiB"},
    )
    message = render(Batch((Item(oom, (1,)),)), Style("zh", "Asia/Shanghai"))
    assert message.title == "[告警:1] web01 OOM killer killed java (pid 4242)"
    assert (
        message.text
        == """#### [告警:1] web01 OOM killer killed java (pid 4242)

**<font color=#FF0000>严重</font> 事件** OOM killer killed java (pid 4242)

- 主机：web01
- 检查：oom
- 指标：kill
- 时间：2026-09-21 22:13:20 CST
- comm：java
- pid：4242
- rss：3.1 GiB"""
    )


def test_a_value_is_said_once_and_a_reason_of_its_own_is_added_below_it():
    bare = render(Batch((Item(event(summary="93.0% (>= 90)"), (1,)),)), EN).text
    useful = render(Batch((Item(event(reason=DiskCheck.text("disk.full_in", eta=14_400)), (1,)),)), EN).text
    assert "Summary" not in bare and bare.count("93%") == 3  # title, headline, value line
    assert "- Summary: full in about 4h" in useful


def test_a_crash_collected_on_a_dump_server_names_the_client_and_the_capture_clock():
    crash = crash_event(
        id="c2",
        subject="/srv/crash/10.0.0.7-2026-09-21-13:30",
        metric="dump",
        host="dumpsrv",
        summary="crash",
        since=None,
        facts={
            "reason": "Out of memory and no killable processes...",
            "panic": "Kernel panic - not syncing: Out of memory: system-wide panic_on_oom is enabled",
            "host": "10.0.0.7",
            "capture_time": "2026-09-21 13:30",
            "hardware": "VMware Virtual Platform",
            "dump_path": "/srv/crash/10.0.0.7-2026-09-21-13:30",
            "dump_size": 851_443_712,
            "dump_format": "flattened",
            "dump_status": "complete",
            "test_crash": False,
            "note": "remote (ssh) dump",
        },
    )
    text = render(Batch((Item(crash, (1,)),)), EN).text
    assert (
        text
        == """#### [kernel crash] 10.0.0.7: Out of memory and no killable processes...

**<font color=#FF0000>CRITICAL</font> kernel crash** Out of memory and no killable processes...

- Host: 10.0.0.7 (dump on dumpsrv)
- Crash time: 2026-09-21 13:30 (capture-kernel clock)
- Found at: 2026-09-21 14:13:20 UTC
- Panic: Kernel panic - not syncing: Out of memory: system-wide panic\\_on\\_oom is enabled
- Hardware: VMware Virtual Platform
- Dump: /srv/crash/10.0.0.7-2026-09-21-13:30, 812 MiB, flattened: run makedumpfile -R before crash
- Status: complete
- Note: remote (ssh) dump

@13800000000"""
    )


def test_a_problem_without_a_value_says_what_is_wrong_in_the_title_a_phone_shows():
    message = render(Batch((Item(process_down(), (1,)),)), ZH)
    assert message.title == "监控 [告警:1] web01 nginx: 运行中 0 个，至少应有 1 个"
    assert message.text == (
        "#### 监控 [告警:1] web01 nginx: 运行中 0 个，至少应有 1 个\n\n"
        "**<font color=#FF0000>严重</font> 告警** nginx: 运行中 0 个，至少应有 1 个\n\n"
        "- 主机：web01\n- 检查：nginx（process）\n- 对象：nginx\n- 开始时间：2026-09-21 22:08:20 CST\n\n"
        "@13800000000"
    )


def test_a_resolve_without_a_value_keeps_its_summary_below_the_headline():
    resolved = process_down(EventKind.RESOLVED, duration=300.0, reason=ProcessCheck.text("process.running", n=1))
    message = render(Batch((Item(resolved, (1,)),)), EN)
    assert message.title == "[RESOLVED] web01 nginx"
    assert "- Summary: 1 running" in message.text


@pytest.mark.parametrize("seconds, said", [(28, "28秒"), (5400, "1小时30分"), (93600, "1天2小时"), (0.25, "250毫秒")])
def test_durations_read_as_chinese_units_in_chinese_messages(seconds, said):
    resolved = process_down(EventKind.RESOLVED, duration=seconds, reason="1 running")
    assert f"- 持续时间：{said}\n" in render(Batch((Item(resolved, (1,)),)), ZH).text + "\n"
    assert "- Duration: " in render(Batch((Item(resolved, (1,)),)), EN).text


@pytest.mark.parametrize("estimate, said", [("~4h", "约4小时"), ("~35m", "约35分钟"), ("~3d", "约3天"), ("soon", "soon")])
def test_the_disk_time_to_full_estimate_reads_in_chinese(estimate, said):
    firing = event(facts={"time_to_full": estimate})
    assert f"- 预计写满：{said}\n" in render(Batch((Item(firing, (1,)),)), ZH).text
    assert f"- Full in: {escape(estimate.replace('soon', 'soon'))}\n" in render(Batch((Item(firing, (1,)),)), EN).text


def test_details_of_several_lines_are_a_quoted_block_that_keeps_the_newest_line():
    # the VM stage's reset: the last kernel line before the reset was cut off when the details
    # were one escaped field of FIELD_CHARS characters
    lines = [f"[2026-12-04 06:12:{n:02d} UTC] powernow_k8: Power state transitions not supported" for n in range(30)]
    lines.append("[2026-12-04 06:12:45 UTC] monagent-vm: the host is about to be reset (SysRq-b)")
    notice = event(EventKind.NOTICE, check="monagent", subject="", metric="host", value=None, details="\n".join(lines))
    for style in (EN, ZH):
        text = render(Batch((Item(notice, (1,)),)), style).text
        assert "> \\[2026-12-04 06:12:45 UTC\\] monagent-vm: the host is about to be reset (SysRq-b)" in text
        assert text.count("\n> ") == 15  # the last EXCERPT_LINES lines, one quoted line each
        assert "06:12:15 UTC" not in text
    one_line = event(EventKind.NOTICE, check="monagent", subject="", metric="host", value=None, details="just one line")
    assert "- Details: just one line" in render(Batch((Item(one_line, (1,)),)), EN).text
