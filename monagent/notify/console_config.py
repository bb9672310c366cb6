"""Configuration of the console receiver (``[notifiers.console]``): on or off, and its route."""

from __future__ import annotations

from monagent.alerting.route import Route, parse_route
from monagent.confread import Section
from monagent.records import config_record


@config_record
class ConsoleConfig:
    enabled: bool
    route: Route


def parse_console(section: Section) -> ConsoleConfig:
    enabled = section.boolean("enabled", True)
    route = parse_route(section)
    section.finish()
    return ConsoleConfig(enabled, route)
