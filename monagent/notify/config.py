"""The ``[notifiers]`` section: the console receiver, DingTalk robots, webhooks, Alertmanager."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, Optional, Tuple

from monagent.alerting.config import AlertingConfig
from monagent.alerting.route import Route, parse_route
from monagent.confread import Section

if TYPE_CHECKING:
    # The alert engine's types, and each receiver kind's configuration, imported where used: a file
    # without robots or Alertmanager (monagent validate of the shipped file) loads none of them.
    from monagent.alerting.policy import Recipient
    from monagent.notify.alertmanager_config import AlertmanagerConfig
    from monagent.notify.chat_config import DingTalkConfig, WebhookConfig


@dataclass(frozen=True)
class ConsoleConfig:
    enabled: bool
    route: Route


@dataclass(frozen=True)
class NotifiersConfig:
    console: ConsoleConfig
    dingtalk: Tuple[DingTalkConfig, ...] = ()
    webhooks: Tuple[WebhookConfig, ...] = ()
    alertmanager: Optional[AlertmanagerConfig] = None

    @property
    def receiver_names(self) -> Tuple[str, ...]:
        names = ["console"] if self.console.enabled else []
        names += [f"dingtalk:{d.name}" for d in self.dingtalk]
        names += [f"webhook:{w.name}" for w in self.webhooks]
        if self.alertmanager is not None:
            names.append("alertmanager")
        return tuple(names)

    def recipients(self) -> Tuple[Recipient, ...]:
        """Every configured receiver with its route, in the order of ``receiver_names``."""
        from monagent.alerting.policy import Recipient

        routes: Dict[str, Route] = {"console": self.console.route}
        routes.update({f"dingtalk:{d.name}": d.route for d in self.dingtalk})
        routes.update({f"webhook:{w.name}": w.route for w in self.webhooks})
        if self.alertmanager is not None:
            routes["alertmanager"] = self.alertmanager.route
        return tuple(Recipient(name, routes.get(name, Route())) for name in self.receiver_names)


def parse_console(section: Section) -> ConsoleConfig:
    enabled = section.boolean("enabled", True)
    route = parse_route(section)
    section.finish()
    return ConsoleConfig(enabled, route)


def parse_notifiers(section: Section, alerting: Optional[AlertingConfig] = None) -> NotifiersConfig:
    """``alerting`` supplies the pacing defaults (group_wait, max_sends_per_minute, lockout, body budget)
    that each robot may override in its own table."""
    console = parse_console(section.table("console"))
    robots = list(section.table("dingtalk").tables())
    hooks = list(section.table("webhook").tables())
    dingtalk: Tuple[DingTalkConfig, ...] = ()
    webhooks: Tuple[WebhookConfig, ...] = ()
    if robots or hooks:
        from monagent.notify.chat_config import parse_dingtalk, parse_webhook
        from monagent.notify.delivery import Delivery

        base = None
        if alerting is not None:
            base = Delivery(
                max_sends_per_minute=alerting.max_sends_per_minute,
                group_wait=alerting.group_wait,
                lockout=alerting.lockout,
                body_budget=alerting.body_budget_bytes,
            )
        dingtalk = tuple(parse_dingtalk(name, sub, base) for name, sub in robots)
        webhooks = tuple(parse_webhook(name, sub, base) for name, sub in hooks)
    alertmanager = None
    if "alertmanager" in section:
        from monagent.notify.alertmanager_config import parse_alertmanager

        alertmanager = parse_alertmanager(section.table("alertmanager"))
    section.mark_used("alertmanager")
    section.finish()
    return NotifiersConfig(console, dingtalk, webhooks, alertmanager)
