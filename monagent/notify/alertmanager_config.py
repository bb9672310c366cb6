"""Configuration of the Alertmanager receiver (``[notifiers.alertmanager]``).

For fleets: every agent tells the Alertmanagers of an HA cluster its current alerts
(docs/fleet.md). The metrics listener's ``[metrics]`` lives in :mod:`monagent.metrics_config`.
"""

from __future__ import annotations

import re
from dataclasses import field
from pathlib import Path
from typing import Mapping, Optional, Tuple
from urllib.parse import urlsplit

from monagent.alerting.route import Route, parse_route
from monagent.confread import Secret, Section, _describe, url_problem
from monagent.records import config_record

WATCHDOG_NAME = "MonagentWatchdog"
RESERVED_LABELS = ("alertname", "instance", "check", "subject", "metric", "severity", "occurrence")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@config_record
class AlertmanagerConfig:
    """``[notifiers.alertmanager]``: every Alertmanager of one HA cluster, told the current state."""

    urls: Tuple[str, ...]
    timeout: float = 10.0
    labels: Mapping[str, str] = field(default_factory=dict)
    watchdog: bool = True
    watchdog_name: str = WATCHDOG_NAME
    repost_interval: float = 60.0
    ends_at_lead: float = 240.0
    username: str = ""
    password: Optional[Secret] = None
    bearer_token: Optional[Secret] = None
    tls_verify: bool = True
    ca_file: Optional[Path] = None
    route: Route = field(default_factory=Route)

    @property
    def name(self) -> str:
        return "alertmanager"


def parse_alertmanager(section: Section) -> AlertmanagerConfig:
    urls = _parse_urls(section)
    repost = section.duration("repost_interval", 60.0, minimum=1.0)
    lead = section.duration("ends_at_lead", 240.0, minimum=1.0)
    if lead <= repost:
        section.error(
            "ends_at_lead",
            f"must be longer than repost_interval ({_secs(repost)}), got {_secs(lead)}: "
            "Alertmanager would resolve every alert between two posts",
        )
    username = section.string("username", "")
    password = section.secret("password")
    token = section.secret("bearer_token")
    if username and password is None:
        section.error("username", "needs password (or password_file, or password_credential)")
    if password is not None and not username:
        section.error("password", "needs username")
    if token is not None and username:
        section.error("bearer_token", "give either username/password or bearer_token, not both")
    config = AlertmanagerConfig(
        urls=urls,
        timeout=section.duration("timeout", 10.0, minimum=0.1),
        labels=_parse_labels(section.table("labels")),
        watchdog=section.boolean("watchdog", True),
        watchdog_name=_parse_watchdog_name(section),
        repost_interval=repost,
        ends_at_lead=lead,
        username=username,
        password=password,
        bearer_token=token,
        tls_verify=section.boolean("tls_verify", True),
        ca_file=_parse_ca_file(section),
        route=parse_route(section),
    )
    section.finish()
    return config


def _secs(seconds: float) -> str:
    from monagent.confread import format_duration

    return format_duration(seconds)


def _parse_urls(section: Section) -> Tuple[str, ...]:
    urls = section.strings("urls")
    if "urls" in section and not urls:
        section.error("urls", 'must list at least one Alertmanager, such as ["http://127.0.0.1:9093"]')
    good = []
    for url in urls:
        problem = url_problem(url)
        if problem:
            why = problem[problem.find(" (") :] if " (" in problem else ""
            section.error("urls", f'each must be an http:// or https:// URL such as "http://am1:9093", got {_describe(url)}{why}')
            continue
        parts = urlsplit(url)
        if parts.username or parts.password:
            section.error("urls", "must not carry credentials; use username and password_file")
        elif parts.query or parts.fragment:
            section.error("urls", f'must be the Alertmanager\'s base URL without "?" or "#", got "{url}"')
        else:
            good.append(url.rstrip("/"))
    return tuple(good)


def _parse_labels(section: Section) -> Mapping[str, str]:
    labels = {}
    for name in section.keys():
        value = section.string(name)
        if not _LABEL_NAME.match(name) or name.startswith("__"):
            section.error(name, "is not a valid Prometheus label name (letters, digits, _; not starting with __)")
        elif name in RESERVED_LABELS:
            section.error(name, f"is set by monagent itself; reserved labels: {', '.join(RESERVED_LABELS)}")
        elif value is not None:
            labels[name] = value
    section.finish()
    return labels


def _parse_ca_file(section: Section) -> Optional[Path]:
    path = section.path_value("ca_file", None)
    if path is not None and not Path(path).is_file():
        section.error("ca_file", f"{path} is not a readable file")
        return None
    return None if path is None else Path(path)


def _parse_watchdog_name(section: Section) -> str:
    name = section.string("watchdog_name", WATCHDOG_NAME)
    if not name:
        section.error("watchdog_name", "must not be empty")
        return WATCHDOG_NAME
    return str(name)


__all__ = ["WATCHDOG_NAME", "AlertmanagerConfig", "parse_alertmanager"]
