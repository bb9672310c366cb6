"""Robot and webhook configurations for the chat notifier tests (their events: tests/events_factory.py)."""

from __future__ import annotations

import json
from typing import Any, Dict, Mapping, Optional, Tuple

from monagent.confread import ConfigError, Document, Section
from monagent.notify.chat_config import DingTalkConfig, WebhookConfig, parse_dingtalk, parse_webhook


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def parse_robot(options: Mapping[str, Any], name: str = "ops", environ: Optional[Dict[str, str]] = None) -> DingTalkConfig:
    """``[notifiers.dingtalk.NAME]`` with ``options``, through the real config reader."""
    lines = [f"[notifiers.dingtalk.{name}]"] + [f"{k} = {toml_value(v)}" for k, v in options.items()]
    return _parse("\n".join(lines), ("notifiers", "dingtalk", name), options, parse_dingtalk, name, environ=environ)


def parse_hook(options: Mapping[str, Any], name: str = "hook") -> WebhookConfig:
    lines = [f"[notifiers.webhook.{name}]"] + [f"{k} = {toml_value(v)}" for k, v in options.items()]
    return _parse("\n".join(lines), ("notifiers", "webhook", name), options, parse_webhook, name, environ=None)


def _parse(
    source: str, path: Tuple[str, ...], options: Mapping[str, Any], parser: Any, name: str, *, environ: Optional[Dict[str, str]]
) -> Any:
    doc = Document("agent.toml", source, environ or {})
    section = Section(doc, path, dict(options))
    config = parser(name, section)
    if doc.problems:
        raise ConfigError(doc.problems)
    return config
