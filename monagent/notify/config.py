"""The ``[notifiers]`` section: one table per receiver kind, read as ``registry.RECEIVERS`` says."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from monagent.alerting.config import AlertingConfig
from monagent.alerting.route import Recipient, Route
from monagent.confread import Section
from monagent.notify.console_config import ConsoleConfig, parse_console
from monagent.notify.delivery import Delivery
from monagent.notify.registry import NAMED, ONE, RECEIVERS
from monagent.records import config_record

if TYPE_CHECKING:
    from monagent.notify.alertmanager_config import AlertmanagerConfig
    from monagent.notify.chat_config import DingTalkConfig, WebhookConfig


@config_record
class NotifiersConfig:
    """One attribute per receiver kind (``registry.RECEIVERS``' ``field``)."""

    console: ConsoleConfig
    dingtalk: Tuple[DingTalkConfig, ...] = ()
    webhooks: Tuple[WebhookConfig, ...] = ()
    alertmanager: Optional[AlertmanagerConfig] = None

    def _receivers(self) -> List[Tuple[str, Route]]:
        return [pair for kind in RECEIVERS for pair in kind.receivers(getattr(self, kind.field))]

    @property
    def receiver_names(self) -> Tuple[str, ...]:
        return tuple(name for name, _ in self._receivers())

    def recipients(self) -> Tuple[Recipient, ...]:
        """Every configured receiver with its route, in the order of ``receiver_names``."""
        return tuple(Recipient(name, route) for name, route in self._receivers())


def parse_notifiers(section: Section, alerting: Optional[AlertingConfig] = None) -> NotifiersConfig:
    """``alerting`` supplies the pacing defaults (group_wait, max_sends_per_minute, lockout, body budget)
    that each robot may override in its own table."""
    base = None
    if alerting is not None:
        base = Delivery(
            max_sends_per_minute=alerting.max_sends_per_minute,
            group_wait=alerting.group_wait,
            lockout=alerting.lockout,
            body_budget=alerting.body_budget_bytes,
        )
    values: Dict[str, Any] = {}
    for kind in RECEIVERS:
        if kind.shape == NAMED:
            values[kind.field] = tuple(kind.parse(name, sub, base) for name, sub in section.table(kind.kind).tables())
        elif kind.shape == ONE or kind.kind in section:
            values[kind.field] = kind.parse(kind.kind, section.table(kind.kind), base)
        section.mark_used(kind.kind)
    section.finish()
    return NotifiersConfig(**values)


__all__ = ["ConsoleConfig", "NotifiersConfig", "parse_console", "parse_notifiers"]
