"""The DingTalk receiver against the fake robot on loopback: signing, errcodes, faults, proxies, secrets."""

from __future__ import annotations

import logging

import pytest
from dingtalk_helpers import parse_robot
from events_factory import T0, event
from fake_dingtalk import FakeDingTalk, Fault
from harness import FakeClock

from monagent.api import Status
from monagent.events import Outcome, OutcomeKind
from monagent.notify.coalesce import Batch, Item
from monagent.notify.dingtalk import DingTalkReceiver, Reply, describe, explain, sign

SECRET = "SEC7f1b0c9ad2f54b6f8e1d0c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3"


@pytest.fixture
def clock():
    return FakeClock(T0)


@pytest.fixture
def fake(clock):
    with FakeDingTalk(clock.time) as server:
        server.add_robot("tok1", secret=SECRET)
        yield server


def receiver(fake, token="tok1", **options):
    config = parse_robot({"webhook": fake.webhook(token), "secret": SECRET, "language": "en", "timezone": "UTC", **options})
    return DingTalkReceiver(config)


def one(kind_event=None):
    return Batch((Item(kind_event or event(), (1,)),))


def test_a_signed_message_is_accepted_and_arrives_as_markdown(fake, clock):
    rx = receiver(fake)
    try:
        outcome = rx.deliver(one(), clock.time())
    finally:
        rx.close()
    assert outcome.kind == OutcomeKind.DELIVERED
    assert [m.title for m in fake.accepted] == ["[FIRING:1] web01 disk /var 93%"]
    assert fake.accepted[0].body["msgtype"] == "markdown"


def test_the_signature_is_made_afresh_for_every_request_so_it_still_works_hours_later(fake, clock):
    rx = receiver(fake)
    try:
        first = rx.url(clock.time())
        assert rx.deliver(one(), clock.time()).kind == OutcomeKind.DELIVERED
        clock.advance(2 * 3600)
        assert rx.deliver(one(), clock.time()).kind == OutcomeKind.DELIVERED
    finally:
        rx.close()
    assert rx.url(clock.time()) != first
    assert [a[2] for a in fake.answers] == [0, 0]


def test_the_signature_follows_the_reference_algorithm():
    # HMAC-SHA256 over "timestamp\nsecret", base64, URL-encoded once (+, / and = encoded)
    # base64 "xExLZuBAxaIrop0wGL20/+du634TRY5oq4uQ3Y9B5rw=", as
    # `printf '1700000000011\nSECabc' | openssl dgst -sha256 -hmac SECabc -binary | base64` gives
    assert sign("SECabc", 1_700_000_000_011) == "xExLZuBAxaIrop0wGL20%2F%2Bdu634TRY5oq4uQ3Y9B5rw%3D"


def test_a_wrong_secret_marks_the_robot_broken_with_dingtalks_words_and_what_to_fix(fake, clock):
    config = parse_robot({"webhook": fake.webhook("tok1"), "secret": "SECwrong"})
    rx = DingTalkReceiver(config)
    try:
        outcome = rx.deliver(one(), clock.time())
    finally:
        rx.close()
    assert outcome.kind == OutcomeKind.BROKEN
    assert outcome.reason == (
        "DingTalk errcode 310000: sign not match (the signature does not match; fix: copy the "
        'SEC… secret again from 安全设置 → 加签 into secret = "...")'
    )
    assert "SECwrong" not in outcome.reason


def test_a_missing_keyword_marks_the_robot_broken_and_a_configured_keyword_is_sent(fake, clock):
    fake.add_robot("kw", keywords=("监控告警",))
    plain = DingTalkReceiver(parse_robot({"webhook": fake.webhook("kw")}))
    keyed = DingTalkReceiver(parse_robot({"webhook": fake.webhook("kw"), "keywords": ["监控告警"]}))
    try:
        refused = plain.deliver(one(), clock.time())
        accepted = keyed.deliver(one(), clock.time())
    finally:
        plain.close()
        keyed.close()
    assert refused.kind == OutcomeKind.BROKEN
    assert "keywords not in content" in refused.reason
    assert accepted.kind == OutcomeKind.DELIVERED
    assert fake.accepted[0].title.startswith("监控告警 ")
    assert fake.accepted[0].text.startswith("#### 监控告警 ")


def test_an_unknown_token_is_a_configuration_fault(fake, clock):
    rx = receiver(fake, token="nope")
    try:
        outcome = rx.deliver(one(), clock.time())
    finally:
        rx.close()
    assert (outcome.kind, outcome.code) == (OutcomeKind.BROKEN, 300001)


@pytest.mark.parametrize(
    ("code", "errmsg", "kind"),
    [
        (-1, "系统繁忙", OutcomeKind.RETRY),
        (300001, "token is not exist", OutcomeKind.BROKEN),
        (300005, "token is not exist", OutcomeKind.BROKEN),
        (310000, "keywords not in content", OutcomeKind.BROKEN),
        (310000, "ip 1.2.3.4 not in whitelist", OutcomeKind.BROKEN),
        (310000, "description:ip 不在白名单中;solution:请联系对应群的管理员", OutcomeKind.BROKEN),
        (400013, "群已被解散", OutcomeKind.BROKEN),
        (400101, "access_token不存在", OutcomeKind.BROKEN),
        (400102, "机器人已停用", OutcomeKind.BROKEN),
        (400105, "不支持的消息类型", OutcomeKind.BROKEN),
        (400106, "robot 不存在", OutcomeKind.BROKEN),
        (410100, "发送速度太快而限流", OutcomeKind.LOCKED_OUT),
        (130101, "send too fast, exceed 20 times per minute", OutcomeKind.LOCKED_OUT),
        (430101, "含有不安全的外链", OutcomeKind.REJECTED),
        (430102, "含有不合适的文本", OutcomeKind.REJECTED),
        (430103, "含有不合适的图片", OutcomeKind.REJECTED),
        (430104, "含有不合适的内容", OutcomeKind.REJECTED),
        (460101, "message too long, exceed 20000 bytes", OutcomeKind.TOO_LARGE),
        (101002, "message is too long", OutcomeKind.TOO_LARGE),
        (40035, "缺少参数 json", OutcomeKind.BROKEN),
        (43004, "无效的HTTP HEADER Content-Type", OutcomeKind.BROKEN),
        (90030, "webhook over limit", OutcomeKind.LOCKED_OUT),
        (123456, "something new", OutcomeKind.RETRY),
    ],
)
def test_every_errcode_of_the_reference_table_is_classified(fake, clock, code, errmsg, kind):
    fake.fail_next(Fault("errcode", code, errmsg))
    rx = receiver(fake)
    try:
        outcome = rx.deliver(one(), clock.time())
    finally:
        rx.close()
    assert (outcome.kind, outcome.code) == (kind, code)
    assert errmsg in outcome.reason


def test_the_quota_code_pauses_for_an_hour(fake, clock):
    fake.fail_next(Fault("errcode", 90030, "webhook over limit"))
    rx = receiver(fake)
    try:
        outcome = rx.deliver(one(), clock.time())
    finally:
        rx.close()
    assert outcome.not_before == clock.time() + 3600


def test_a_stale_timestamp_is_retried_once_then_blamed_on_the_host_clock(fake, clock):
    rx = receiver(fake)
    try:
        skewed = clock.time() - 2 * 3600  # this host's clock is two hours behind DingTalk's
        first = rx.deliver(one(), skewed)
        second = rx.deliver(one(), skewed)
    finally:
        rx.close()
    assert (first.kind, first.not_before) == (OutcomeKind.RETRY, skewed)
    assert second.kind == OutcomeKind.BROKEN
    assert "invalid timestamp" in second.reason and "NTP" in second.reason


@pytest.mark.parametrize("fault", ["http500", "reset"])
def test_server_errors_and_resets_are_transient(fake, clock, fault):
    fake.fail_next(Fault(fault))
    rx = receiver(fake)
    try:
        outcome = rx.deliver(one(), clock.time())
        again = rx.deliver(one(), clock.time())
    finally:
        rx.close()
    assert outcome.kind == OutcomeKind.RETRY
    assert again.kind == OutcomeKind.DELIVERED


def test_a_hanging_robot_times_out_and_is_retried(fake, clock):
    fake.fail_next(Fault("hang"))
    rx = receiver(fake, timeout="200ms")
    try:
        outcome = rx.deliver(one(), clock.time())
    finally:
        fake.release.set()
        rx.close()
    assert outcome.kind == OutcomeKind.RETRY
    assert outcome.reason == "network error: no complete reply within 0.2s"
    assert "tok1" not in outcome.reason


def test_the_proxy_comes_from_the_environment(fake, clock, monkeypatch):
    host, port = fake.webhook("tok1").split("/")[2].split(":")
    monkeypatch.setenv("http_proxy", f"http://{host}:{port}")
    monkeypatch.setenv("HTTP_PROXY", f"http://{host}:{port}")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    config = parse_robot({"webhook": "http://oapi.dingtalk.invalid/robot/send?access_token=tok1", "secret": SECRET})
    rx = DingTalkReceiver(config)
    try:
        outcome = rx.deliver(one(), clock.time())
    finally:
        rx.close()
    assert outcome.kind == OutcomeKind.DELIVERED
    assert len(fake.accepted) == 1


def test_mentions_go_into_the_at_object_and_the_body(fake, clock):
    rx = receiver(
        fake, mentions={"critical": {"at_mobiles": ["13800000000"], "at_user_ids": ["u1"]}, "warning": {"at_all": True}}
    )
    try:
        rx.deliver(one(), clock.time())
        rx.deliver(one(event(severity=Status.WARNING)), clock.time())
    finally:
        rx.close()
    critical, warning = fake.accepted
    assert critical.body["at"] == {"atMobiles": ["13800000000"], "atUserIds": ["u1"], "isAtAll": False}
    assert critical.text.endswith("\n\n@13800000000 @u1")  # DingTalk wants each @ in the text too
    assert warning.body["at"] == {"atMobiles": [], "atUserIds": [], "isAtAll": True}


def test_five_hundred_chinese_alerts_fit_in_one_body_the_robot_accepts(fake, clock):
    items = tuple(Item(event(subject=f"/数据/磁盘{i}", summary="磁盘空间不足" * 5, incident=f"i{i}"), (i,)) for i in range(500))
    rx = receiver(fake, language="zh")
    try:
        outcome = rx.deliver(Batch(items), clock.time())
    finally:
        rx.close()
    assert outcome.kind == OutcomeKind.DELIVERED
    assert 19_000 < fake.accepted[0].size <= 20_000
    assert fake.accepted[0].text.endswith("、已恢复 0）")


def test_neither_token_nor_secret_appears_in_logs_or_reasons(clock, caplog):
    caplog.set_level(logging.DEBUG)
    config = parse_robot(
        {"webhook": "http://127.0.0.1:9/robot/send?access_token=f0cafe1234567890", "secret": SECRET, "timeout": "1s"}
    )
    rx = DingTalkReceiver(config)
    try:
        outcome = rx.deliver(one(), clock.time())
    finally:
        rx.close()
    assert outcome.kind == OutcomeKind.RETRY
    text = outcome.reason + caplog.text + repr(config)
    assert "f0cafe1234567890" not in text and SECRET not in text
    assert outcome.reason == (
        "network error: ConnectionError: connection refused by 127.0.0.1:9 (nothing listens there, or a proxy is needed)"
    )


def test_describe_says_what_an_errcode_means():
    assert explain(410100).meaning == "sending too fast: the robot is rate limited for 10 minutes"
    reply = Reply(Outcome(OutcomeKind.BROKEN), 200, 300001, "token is not exist")
    assert describe(reply) == (
        "errcode 300001 (token is not exist)",
        "the access token does not exist; fix: copy the whole webhook URL again from the "
        "robot's settings (群设置 → 智能群助手 → the robot)",
    )


def test_the_fake_robot_locks_out_the_21st_message_of_a_minute_for_ten_minutes(fake, clock):
    rx = receiver(fake)
    try:
        answers = [rx.deliver(one(), clock.time()).kind for _ in range(21)]
        clock.advance(9 * 60)
        still = rx.deliver(one(), clock.time()).kind
        clock.advance(61)
        again = rx.deliver(one(), clock.time()).kind
    finally:
        rx.close()
    assert answers == [OutcomeKind.DELIVERED] * 20 + [OutcomeKind.LOCKED_OUT]
    assert (still, again) == (OutcomeKind.LOCKED_OUT, OutcomeKind.DELIVERED)


def test_the_fake_robot_refuses_a_body_over_twenty_thousand_bytes(fake, clock):
    rx = receiver(fake)
    try:
        too_big = rx.post(b'{"msgtype":"markdown","markdown":{"title":"t","text":"' + b"x" * 20_000 + b'"}}', clock.time())
    finally:
        rx.close()
    assert (too_big.outcome.kind, too_big.errcode) == (OutcomeKind.TOO_LARGE, 460101)
