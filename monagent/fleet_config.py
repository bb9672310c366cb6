"""Configuration of the Prometheus metrics listener (``[metrics]``) and the Alertmanager
receiver (``[notifiers.alertmanager]``). STUB: the fleet-scale work fills this in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from monagent.confread import Section


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool
    listen: str


@dataclass(frozen=True)
class AlertmanagerConfig:
    urls: Tuple[str, ...]


def parse_metrics(section: Section) -> MetricsConfig:
    config = MetricsConfig(section.boolean("enabled", False), section.string("listen", "127.0.0.1:9717"))
    section.finish()
    return config


def parse_alertmanager(section: Section) -> AlertmanagerConfig:
    config = AlertmanagerConfig(section.strings("urls", ()))
    section.finish()
    return config
