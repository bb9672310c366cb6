"""Building the dispatchers of the chat receivers: one per DingTalk robot and per generic webhook."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, List

if TYPE_CHECKING:
    from monagent.notify.config import NotifiersConfig
    from monagent.notify.dispatcher import ChatDispatcher


def build_chat_dispatchers(notifiers: NotifiersConfig) -> List[ChatDispatcher]:
    """``[notifiers.dingtalk.*]`` then ``[notifiers.webhook.*]``, in the order of ``receiver_names``.

    Dispatchers of the same URL share one sliding window (DingTalk counts per robot), and the
    window outlives a reload, so rebuilding the dispatchers never resets the count.
    """
    from monagent.notify.dingtalk import DingTalkReceiver
    from monagent.notify.dispatcher import ChatDispatcher
    from monagent.notify.ratelimit import shared_window
    from monagent.notify.webhook import WebhookReceiver

    dispatchers: List[ChatDispatcher] = []
    for robot in notifiers.dingtalk:
        window = shared_window(_digest(robot.webhook.reveal()), robot.delivery.max_sends_per_minute)
        dispatchers.append(ChatDispatcher(DingTalkReceiver(robot), robot.delivery, window=window))
    for hook in notifiers.webhooks:
        window = shared_window(_digest(hook.url.reveal()), hook.delivery.max_sends_per_minute)
        dispatchers.append(ChatDispatcher(WebhookReceiver(hook), hook.delivery, window=window))
    return dispatchers


def _digest(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()
