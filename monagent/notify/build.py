"""Building one dispatcher per configured receiver."""

from __future__ import annotations

import time
from typing import Any, List, Optional


def build_dispatchers(config: Any, store: Any, started_at: Optional[float] = None) -> List[Any]:
    """Console, DingTalk robots, webhooks and Alertmanager, in the order of ``receiver_names``."""
    dispatchers: List[Any] = []
    notifiers = config.notifiers
    if notifiers.console.enabled:
        from monagent.notify.console import ConsoleDispatcher

        dispatchers.append(ConsoleDispatcher())
    if notifiers.dingtalk or notifiers.webhooks:
        from monagent.notify.chat import build_chat_dispatchers

        dispatchers.extend(build_chat_dispatchers(notifiers))
    if notifiers.alertmanager is not None:
        from monagent.notify.alertmanager import AlertmanagerDispatcher

        dispatchers.append(
            AlertmanagerDispatcher(
                notifiers.alertmanager, config.agent.hostname, store, started_at=time.time() if started_at is None else started_at
            )
        )
    return dispatchers
