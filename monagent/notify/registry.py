"""The receiver kinds, one row each: the ``[notifiers.KIND]`` table, its config parser, the receivers it
names and its dispatcher factory.

:func:`monagent.notify.config.parse_notifiers`, :class:`~monagent.notify.config.NotifiersConfig`'s
receiver names and routes, and :func:`monagent.notify.build.build_dispatchers` read only this table:
a new kind of receiver is one row here, the ``NotifiersConfig`` attribute the row names, and its own
modules; never another ``if`` elsewhere (tests/test_receiver_registry.py checks they agree).

The parsers and their config types are imported when a table of their kind is read. Each factory imports its receiver when it is
called: ``monagent validate`` and ``monagent check`` read the config and never load the HTTP stack
(their start-up time is measured, #17).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, List, Optional, Sequence, Tuple

from monagent.alerting.route import Route
from monagent.confread import Section
from monagent.notify.console_config import ConsoleConfig, parse_console
from monagent.notify.delivery import Delivery
from monagent.records import config_record

if TYPE_CHECKING:  # each kind's config module is imported by its parser, when such a table is present (#17)
    from monagent.notify.alertmanager import KeyValue
    from monagent.notify.alertmanager_config import AlertmanagerConfig
    from monagent.notify.base import Dispatcher
    from monagent.notify.chat_config import DingTalkConfig, WebhookConfig

ONE, OPTIONAL, NAMED = "one", "optional", "named"


@config_record
class Setting:
    """What a factory needs besides its own configs: the host name, the store's key-value table, the start."""

    host: str
    store: KeyValue
    started_at: float


@config_record
class ReceiverKind:
    """One kind of receiver.

    ``shape``: :data:`ONE` (``[notifiers.KIND]``, read even when absent), :data:`OPTIONAL` (read only
    when present; None otherwise) or :data:`NAMED` (``[notifiers.KIND.NAME]``, a tuple, one receiver
    each). ``field`` is the attribute of ``NotifiersConfig`` that holds what ``parse`` returned;
    ``receivers`` lists the ``(receiver name, route)`` pairs of that value; ``build`` makes their
    dispatchers, in that order."""

    kind: str
    shape: str
    field: str
    parse: Callable[[str, Section, Optional[Delivery]], Any]
    receivers: Callable[[Any], Sequence[Tuple[str, Route]]]
    build: Callable[[Any, Setting], List[Dispatcher]]


def parse_dingtalk(name: str, section: Section, base: Optional[Delivery]) -> DingTalkConfig:
    from monagent.notify.chat_config import parse_dingtalk as parse

    return parse(name, section, base)


def parse_webhook(name: str, section: Section, base: Optional[Delivery]) -> WebhookConfig:
    from monagent.notify.chat_config import parse_webhook as parse

    return parse(name, section, base)


def parse_alertmanager(name: str, section: Section, base: Optional[Delivery]) -> AlertmanagerConfig:
    from monagent.notify.alertmanager_config import parse_alertmanager as parse

    return parse(section)


def _digest(url: str) -> str:
    import hashlib  # only when robots are built: validate and check never pay for it (#17)

    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def build_console(console: ConsoleConfig, setting: Setting) -> List[Dispatcher]:
    from monagent.notify.console import ConsoleDispatcher

    return [ConsoleDispatcher()] if console.enabled else []


def build_dingtalk(robots: Sequence[DingTalkConfig], setting: Setting) -> List[Dispatcher]:
    """Dispatchers of the same URL share one sliding window (DingTalk counts per robot), and the
    window outlives a reload, so rebuilding the dispatchers never resets the count."""
    from monagent.notify.dingtalk import DingTalkReceiver
    from monagent.notify.dispatcher import ChatDispatcher
    from monagent.notify.ratelimit import shared_window

    return [
        ChatDispatcher(
            DingTalkReceiver(robot),
            robot.delivery,
            window=shared_window(_digest(robot.webhook.reveal()), robot.delivery.max_sends_per_minute),
        )
        for robot in robots
    ]


def build_webhook(hooks: Sequence[WebhookConfig], setting: Setting) -> List[Dispatcher]:
    from monagent.notify.dispatcher import ChatDispatcher
    from monagent.notify.ratelimit import shared_window
    from monagent.notify.webhook import WebhookReceiver

    return [
        ChatDispatcher(
            WebhookReceiver(hook),
            hook.delivery,
            window=shared_window(_digest(hook.url.reveal()), hook.delivery.max_sends_per_minute),
        )
        for hook in hooks
    ]


def build_alertmanager(config: Optional[AlertmanagerConfig], setting: Setting) -> List[Dispatcher]:
    if config is None:
        return []
    from monagent.notify.alertmanager import AlertmanagerDispatcher

    return [AlertmanagerDispatcher(config, setting.host, setting.store, started_at=setting.started_at)]


def _console_receivers(console: ConsoleConfig) -> Sequence[Tuple[str, Route]]:
    return [("console", console.route)] if console.enabled else []


def _alertmanager_receivers(config: Optional[AlertmanagerConfig]) -> Sequence[Tuple[str, Route]]:
    return [] if config is None else [("alertmanager", config.route)]


RECEIVERS: Tuple[ReceiverKind, ...] = (
    ReceiverKind("console", ONE, "console", lambda name, s, base: parse_console(s), _console_receivers, build_console),
    ReceiverKind(
        "dingtalk",
        NAMED,
        "dingtalk",
        parse_dingtalk,
        lambda robots: [(f"dingtalk:{r.name}", r.route) for r in robots],
        build_dingtalk,
    ),
    ReceiverKind(
        "webhook",
        NAMED,
        "webhooks",
        parse_webhook,
        lambda hooks: [(f"webhook:{h.name}", h.route) for h in hooks],
        build_webhook,
    ),
    ReceiverKind(
        "alertmanager",
        OPTIONAL,
        "alertmanager",
        parse_alertmanager,
        _alertmanager_receivers,
        build_alertmanager,
    ),
)
"""Every receiver kind, in the order of the receiver names (and of the dispatchers)."""
