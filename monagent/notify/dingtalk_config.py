"""Configuration of DingTalk robots (``[notifiers.dingtalk.NAME]``) and generic webhooks
(``[notifiers.webhook.NAME]``). STUB: the DingTalk notifier work fills this in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from monagent.confread import Secret, Section
from monagent.notify.route import Route, parse_route


@dataclass(frozen=True)
class DingTalkConfig:
    name: str
    webhook: Secret
    secret: Optional[Secret]
    route: Route


@dataclass(frozen=True)
class WebhookConfig:
    name: str
    url: Secret
    route: Route


def parse_dingtalk(name: str, section: Section) -> DingTalkConfig:
    webhook = section.secret("webhook", required=True) or Secret("")
    secret = section.secret("secret")
    route = parse_route(section)
    section.finish()
    return DingTalkConfig(name, webhook, secret, route)


def parse_webhook(name: str, section: Section) -> WebhookConfig:
    url = section.secret("url", required=True) or Secret("")
    route = parse_route(section)
    section.finish()
    return WebhookConfig(name, url, route)
