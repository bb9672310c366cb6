"""Configuration of DingTalk robots (``[notifiers.dingtalk.NAME]``) and generic JSON
webhooks (``[notifiers.webhook.NAME]``).

A robot is addressed by its whole ``webhook`` URL or by its ``access_token`` alone;
both, and the signing ``secret``, are :class:`~monagent.confread.Secret` values read
inline, from ``${ENV}``, from ``*_file`` or from a systemd credential (``*_credential``).
"""

from __future__ import annotations

from dataclasses import field, replace
from typing import Mapping, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

from monagent.alerting.route import Route, parse_route
from monagent.api import LEVELS
from monagent.confread import Secret, Section, is_deferred, url_problem
from monagent.formatting import load_zone
from monagent.notify.delivery import DINGTALK_BODY_LIMIT, Delivery
from monagent.records import config_record

DINGTALK_SEND_URL = "https://oapi.dingtalk.com/robot/send"
DINGTALK_RATE_CAP = 20  # messages per rolling minute per robot, enforced by DingTalk
MENTION_SEVERITIES = LEVELS  # the notification levels (monagent.api.SEVERITIES)
LANGUAGES = ("zh", "en")
ROBOT_DELIVERY = Delivery()
WEBHOOK_DELIVERY = Delivery(max_sends_per_minute=60, body_budget=1_000_000)  # no cloud rate cap


@config_record
class Mentions:
    """Who is @-mentioned for one severity (DingTalk ``at``: atMobiles, atUserIds, isAtAll)."""

    at_mobiles: Tuple[str, ...] = ()
    at_user_ids: Tuple[str, ...] = ()
    at_all: bool = False

    def __bool__(self) -> bool:
        return bool(self.at_mobiles or self.at_user_ids or self.at_all)


@config_record
class DingTalkConfig:
    name: str
    webhook: Secret  # the whole send URL including ``access_token``
    secret: Optional[Secret]
    route: Route
    keywords: Tuple[str, ...] = ()
    timeout: float = 10.0
    language: str = "zh"
    timezone: Optional[str] = None  # IANA name; None: the host's local time
    mentions: Mapping[str, Mentions] = field(default_factory=dict)
    delivery: Delivery = ROBOT_DELIVERY

    @property
    def receiver_name(self) -> str:
        return f"dingtalk:{self.name}"


@config_record
class WebhookConfig:
    name: str
    url: Secret
    route: Route
    timeout: float = 10.0
    language: str = "en"
    timezone: Optional[str] = None
    delivery: Delivery = WEBHOOK_DELIVERY

    @property
    def receiver_name(self) -> str:
        return f"webhook:{self.name}"


def parse_dingtalk(name: str, section: Section, base: Optional[Delivery] = None) -> DingTalkConfig:
    """One robot; ``base`` carries the pacing defaults from ``[alerting]``."""
    webhook = _robot_url(section)
    secret = section.secret("secret")
    if secret is not None and "://" in secret.reveal():
        section.error("secret", 'looks like a URL; the signing secret is the "SEC…" string shown under 加签')
    keywords = section.strings("keywords", ())
    if len(keywords) > 10:
        section.error("keywords", f"DingTalk accepts at most 10 keywords, got {len(keywords)}")
    if any(not k.strip() for k in keywords):
        section.error("keywords", "must not contain empty strings")
    max_rate = DINGTALK_RATE_CAP - 1
    config = DingTalkConfig(
        name=name,
        webhook=webhook,
        secret=secret,
        route=parse_route(section),
        keywords=tuple(keywords),
        timeout=section.duration("timeout", 10.0, minimum=0.1),
        language=section.string("language", "zh", choices=LANGUAGES),
        timezone=_timezone(section),
        mentions=_mentions(section.table("mentions")),
        delivery=_delivery(section, base or Delivery(), max_rate, DINGTALK_BODY_LIMIT),
    )
    section.finish()
    return config


def parse_webhook(name: str, section: Section, pacing: Optional[Delivery] = None) -> WebhookConfig:
    """One webhook; ``pacing`` carries group_wait and lockout defaults from ``[alerting]``."""
    url = section.secret("url", required=True) or Secret("")
    if url and not is_deferred(url) and url_problem(url.reveal()):
        section.error("url", url_problem(url.reveal()))
    base = WEBHOOK_DELIVERY
    if pacing is not None:
        base = replace(base, group_wait=pacing.group_wait, lockout=pacing.lockout)
    config = WebhookConfig(
        name=name,
        url=url,
        route=parse_route(section),
        timeout=section.duration("timeout", 10.0, minimum=0.1),
        language=section.string("language", "en", choices=LANGUAGES),
        timezone=_timezone(section),
        delivery=_delivery(section, base, 10_000, 10_000_000),
    )
    section.finish()
    return config


def _robot_url(section: Section) -> Secret:
    """The send URL from ``webhook`` (whole URL) or ``access_token`` (the value after ``access_token=``)."""
    has_webhook = any(k in section for k in ("webhook", "webhook_file", "webhook_credential"))
    has_token = any(k in section for k in ("access_token", "access_token_file", "access_token_credential"))
    if has_webhook and has_token:
        section.error("access_token", "give either webhook or access_token, not both")
    if has_token and not has_webhook:
        token = section.secret("access_token")
        section.mark_used("webhook", "webhook_file", "webhook_credential")
        if token is None:
            return Secret("")
        if is_deferred(token):  # the service reads it; checked for real where it can be read
            return token
        if "://" in token.reveal() or "access_token=" in token.reveal():
            section.error(
                "access_token",
                'looks like the whole webhook URL; put it in webhook = "..." instead '
                "(access_token is only the value after access_token=)",
            )
            return Secret("")
        return Secret(f"{DINGTALK_SEND_URL}?access_token={token.reveal()}")
    section.mark_used("access_token", "access_token_file", "access_token_credential")
    webhook = section.secret("webhook")
    if webhook is None:
        if not has_webhook:
            section.error("webhook", "is required (the robot's webhook URL), or give access_token")
        return Secret("")
    if is_deferred(webhook):  # the service reads it; checked for real where it can be read
        return webhook
    if url_problem(webhook.reveal()):
        section.error("webhook", url_problem(webhook.reveal()))
        return webhook
    parts = urlsplit(webhook.reveal())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        section.error("webhook", "must be the robot's URL, https://oapi.dingtalk.com/robot/send?access_token=…")
    elif not parse_qs(parts.query).get("access_token", [""])[0]:
        section.error("webhook", "has no access_token=… in it; copy the whole webhook URL from the robot's settings")
    return webhook


def _timezone(section: Section) -> Optional[str]:
    name: Optional[str] = section.string("timezone", None)
    if name is None:
        return None
    try:
        load_zone(name)
    except ValueError:
        section.error("timezone", f'unknown time zone "{name}"; use an IANA name such as "Asia/Shanghai"')
        return None
    return name


def _mentions(section: Section) -> Mapping[str, Mentions]:
    result = {}
    for severity, sub in section.tables():
        if severity not in MENTION_SEVERITIES:
            sub.error(None, f"unknown severity; use one of {', '.join(MENTION_SEVERITIES)}")
            sub.mark_used(*sub.keys())
            continue
        mobiles = sub.strings("at_mobiles", ())
        for mobile in mobiles:
            if not mobile.strip() or any(c.isspace() for c in mobile):
                sub.error("at_mobiles", f'"{mobile}" is not a phone number (overseas: "+852-12345678")')
        result[severity] = Mentions(tuple(mobiles), sub.strings("at_user_ids", ()), sub.boolean("at_all", False))
        sub.finish()
    return result


def _delivery(section: Section, base: Delivery, max_rate: int, max_body: int) -> Delivery:
    raw = section.data.get("max_sends_per_minute")
    if max_rate < DINGTALK_RATE_CAP and isinstance(raw, int) and not isinstance(raw, bool) and raw > max_rate:
        section.mark_used("max_sends_per_minute")
        section.error(
            "max_sends_per_minute",
            f"must be below {DINGTALK_RATE_CAP}, got {raw} (DingTalk allows "
            f"{DINGTALK_RATE_CAP} a minute and locks the robot for 10 minutes past it)",
        )
        rate = base.max_sends_per_minute
    else:
        rate = section.integer("max_sends_per_minute", base.max_sends_per_minute, minimum=1, maximum=max_rate)
    retry_initial = section.duration("retry_initial", base.retry_initial, minimum=0.1)
    retry_max = section.duration("retry_max", base.retry_max, minimum=0.1)
    if retry_max < retry_initial:
        section.error("retry_max", "must not be less than retry_initial")
    return Delivery(
        max_sends_per_minute=rate,
        group_wait=section.duration("group_wait", base.group_wait),
        lockout=section.duration("lockout", base.lockout),
        body_budget=section.integer("body_budget", base.body_budget, minimum=2000, maximum=max_body),
        retry_initial=retry_initial,
        retry_max=retry_max,
        reprobe_interval=section.duration("reprobe_interval", base.reprobe_interval, minimum=1.0),
    )
