"""Warnings for a valid configuration that cannot do what its owner wants.

``monagent validate`` prints them (exit 0; ``--strict`` makes them exit 78): a file that
watches nothing, alerts that reach nobody but the console, and the placeholders of the
quickstart (``access_token=…``, ``SEC…``) left in a robot's settings, which DingTalk can
never accept. A secret the service resolves itself (``LoadCredential=``, ``${VAR}``) is
not looked at here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from monagent.confread import is_deferred, locate_keys

# The text, one place per message (for the catalogues).
NO_CHECKS = (
    "{file}: no checks are configured: nothing is watched; add a [checks.NAME] table (the shipped agent.toml has examples)"
)
ALL_DISABLED = "{file}: every check is disabled (enabled = false): nothing is watched"
CONSOLE_ONLY = (
    "{file}: no receiver but the console: alerts reach only the agent's log; add [notifiers.dingtalk.NAME], "
    "[notifiers.webhook.NAME] or [notifiers.alertmanager]"
)
PLACEHOLDER = "{where}: {key}: looks like a placeholder ({what}), which can never work; paste the real value from {source}"

# Markers of a value copied from documentation rather than from the robot's settings.
_PLACEHOLDER = re.compile(r"…|\.\.\.|<[^>]*>|\bx{3,}\b|your[_-]|changeme|replace[_-]?me|\bTODO\b", re.IGNORECASE)
_ROBOT_SOURCE = "the robot's settings (群设置 → 智能群助手 → 机器人)"


def _where(file: str, lines: Dict[Tuple[str, ...], int], path: Sequence[str]) -> str:
    line = lines.get(tuple(path)) or lines.get(tuple(path[:-1]))
    return f"{file}:{line}" if line else file


def _placeholder(value: str) -> Optional[str]:
    match = _PLACEHOLDER.search(value)
    if match is not None:
        return f'"{match.group(0)}"'
    if value.strip().upper() == "SEC":
        return '"SEC" alone'
    return None


def _secret_placeholders(config: Any, lines: Dict[Tuple[str, ...], int]) -> List[str]:
    from urllib.parse import parse_qs, urlsplit

    out = []
    for robot in config.notifiers.dingtalk:
        base = ("notifiers", "dingtalk", robot.name)
        url_key = "webhook" if (base + ("webhook",)) in lines else "access_token"
        token = (
            "" if is_deferred(robot.webhook) else parse_qs(urlsplit(robot.webhook.reveal()).query).get("access_token", [""])[0]
        )
        secret = "" if robot.secret is None or is_deferred(robot.secret) else robot.secret.reveal()
        for key, value in ((url_key, token), ("secret", secret)):  # of a webhook URL only the token can be one
            what = _placeholder(value) if value else None
            if what:
                where = _where(config.file, lines, base + (key,))
                out.append(PLACEHOLDER.format(where=where, key=".".join(base + (key,)), what=what, source=_ROBOT_SOURCE))
    for hook in config.notifiers.webhooks:
        base = ("notifiers", "webhook", hook.name)
        what = None if is_deferred(hook.url) else _placeholder(hook.url.reveal())
        if what:
            out.append(
                PLACEHOLDER.format(
                    where=_where(config.file, lines, base + ("url",)),
                    key=".".join(base + ("url",)),
                    what=what,
                    source="the receiving service",
                )
            )
    return out


def config_warnings(config: Any) -> List[str]:
    """Every warning for ``config`` (a loaded :class:`~monagent.config.Config`), in file order."""
    try:
        lines = locate_keys(Path(config.file).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        lines = {}
    warnings = []
    if not config.checks:
        warnings.append(NO_CHECKS.format(file=config.file))
    elif not any(c.enabled for c in config.checks):
        warnings.append(ALL_DISABLED.format(file=config.file))
    notifiers = config.notifiers
    if not notifiers.dingtalk and not notifiers.webhooks and not getattr(notifiers, "alertmanager", None):
        warnings.append(CONSOLE_ONLY.format(file=config.file))
    return warnings + _secret_placeholders(config, lines)
