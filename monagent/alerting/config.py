"""The ``[alerting]`` defaults and per-check ``[checks.NAME.alerting]`` overrides.
STUB: the state-machine work fills this in (alerting.md d.9)."""

from __future__ import annotations

from dataclasses import dataclass

from monagent.confread import Section


@dataclass(frozen=True)
class AlertingOverrides:
    """The timing parameters of one check instance (defaults from ``[alerting]``)."""

    fire_after_cycles: int = 3
    clear_after_cycles: int = 2


@dataclass(frozen=True)
class AlertingConfig:
    defaults: AlertingOverrides = AlertingOverrides()


def parse_alerting(section: Section) -> AlertingConfig:
    defaults = parse_overrides(section, AlertingConfig())
    return AlertingConfig(defaults)


def parse_overrides(section: Section, base: AlertingConfig) -> AlertingOverrides:
    d = base.defaults
    result = AlertingOverrides(
        fire_after_cycles=section.integer("fire_after_cycles", d.fire_after_cycles, minimum=1),
        clear_after_cycles=section.integer("clear_after_cycles", d.clear_after_cycles, minimum=1),
    )
    section.finish()
    return result
