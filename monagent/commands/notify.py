"""``monagent notify-test``: send a test message through the configured robots and say what came back."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, List

from monagent.cli import EX_USAGE, DescriptionFormatter, config_error_exit
from monagent.commands.core import add_config_option, config_path


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "notify-test",
        help="send a test message to the DingTalk robots and webhooks",
        formatter_class=DescriptionFormatter,
        description="Send one test message to each configured DingTalk robot (or only --robot NAME) and to each "
        "generic webhook, then print DingTalk's answer and what its errcode means. The access token "
        "and signing secret are never printed. Exit 0 when every receiver accepted the message, "
        "1 when one did not, 78 when the configuration is invalid.",
        epilog="examples:\n  monagent notify-test\n  monagent notify-test --robot ops -c /etc/monagent/agent.toml",
    )
    add_config_option(parser)
    parser.add_argument(
        "--robot",
        metavar="NAME",
        default=None,
        help="only this robot ([notifiers.dingtalk.NAME]) or webhook ([notifiers.webhook.NAME])",
    )
    parser.set_defaults(func=cmd_notify_test)


def cmd_notify_test(args: argparse.Namespace) -> int:
    from monagent import config as config_module
    from monagent.confread import ConfigError
    from monagent.credentials import ServiceCredentials

    try:  # outside the service: secrets are read where the installed unit gets them (as root)
        config = config_module.load(config_path(args), resolver=ServiceCredentials())
    except ConfigError as err:
        return config_error_exit(err, outcome="no test message was sent")
    robots = [r for r in config.notifiers.dingtalk if args.robot in (None, r.name)]
    hooks = [w for w in config.notifiers.webhooks if args.robot in (None, w.name)]
    if not robots and not hooks:
        names = [r.name for r in config.notifiers.dingtalk] + [w.name for w in config.notifiers.webhooks]
        where = f"; configured: {', '.join(names)}" if names else "; none is configured ([notifiers.dingtalk.NAME])"
        what = f'no robot or webhook named "{args.robot}"' if args.robot else "no robot or webhook"
        print(f"monagent notify-test: {what}{where}", file=sys.stderr)
        return EX_USAGE
    from monagent.formatting import Formatter

    host = config.agent.hostname or os.uname().nodename
    fmt = Formatter(config.agent.language)
    results = [_test_robot(robot, host, fmt) for robot in robots] + [_test_webhook(hook, host, fmt) for hook in hooks]
    return 0 if all(results) else 1


def safe_url(url: str) -> str:
    """The URL with its access token, query and user:password redacted:
    ``https://oapi.dingtalk.com/robot/send?access_token=f0ca…``."""
    from urllib.parse import parse_qs, urlsplit

    from monagent.confread import redact

    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(a URL that cannot be parsed)"
    token = parse_qs(parts.query).get("access_token", [""])[0]
    userinfo = "…(redacted)@" if parts.username or parts.password else ""  # user:password is a secret too
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname or ""
    base = f"{parts.scheme}://{userinfo}{host}{port}{parts.path}"
    return f"{base}?access_token={redact(token)}" if token else base + ("?…(redacted)" if parts.query else "")


def _test_robot(robot: Any, host: str, fmt: Any) -> bool:
    from monagent.notify.dingtalk import DingTalkReceiver, describe

    receiver = DingTalkReceiver(robot)
    sending = "notify_test.sending_signed" if robot.secret else "notify_test.sending_unsigned"
    print(fmt.say(sending, receiver=f"dingtalk:{robot.name}", url=safe_url(robot.webhook.reveal())))
    try:
        reply = receiver.send_test(time.time(), host)
    finally:
        receiver.close()
    answer, meaning = describe(reply, fmt)
    ok = reply.errcode == 0
    print(fmt.say("notify_test.line", label=fmt.say("notify_test.ok" if ok else "notify_test.failed"), text=answer))
    print(fmt.say("notify_test.line", label=fmt.say("notify_test.meaning"), text=meaning))
    return ok


def _test_webhook(hook: Any, host: str, fmt: Any) -> bool:
    from monagent.api import Status
    from monagent.events import AlertKey, Event, EventKind, OutcomeKind
    from monagent.notify.coalesce import Batch, Item
    from monagent.notify.dingtalk import AGENT_WOULD
    from monagent.notify.webhook import WebhookReceiver

    receiver = WebhookReceiver(hook)
    now = time.time()
    event = Event(
        id=f"notify-test:{int(now)}",
        kind=EventKind.NOTICE,
        key=AlertKey("monagent", "", "notify-test"),
        severity=Status.OK,
        time=now,
        host=host,
        summary="monagent test message",
    )
    print(fmt.say("notify_test.sending", receiver=f"webhook:{hook.name}", url=safe_url(hook.url.reveal())))
    try:
        outcome = receiver.deliver(Batch((Item(event, (0,)),), budget=hook.delivery.body_budget), now)
    finally:
        receiver.close()
    ok = outcome.kind == OutcomeKind.DELIVERED
    then = fmt.say(AGENT_WOULD[outcome.kind]) if outcome.kind in AGENT_WOULD else ""
    verdict = fmt.say("notify_test.ok" if ok else "notify_test.failed")
    lines: List[str] = [fmt.say("notify_test.line", label=verdict, text=outcome.kind.value + (f" ({then})" if then else ""))]
    if outcome.reason:
        lines.append(fmt.say("notify_test.line", label=fmt.say("notify_test.meaning"), text=outcome.reason))
    print("\n".join(lines))
    return ok
