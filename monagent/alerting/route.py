"""Routing: which events go to which receiver."""

from __future__ import annotations

import fnmatch
from typing import Tuple

from monagent.api import LEVELS, Status
from monagent.confread import Section
from monagent.records import config_record


@config_record
class Route:
    """Which events a receiver gets: check-name globs (empty: all) and severities (empty: all)."""

    checks: Tuple[str, ...] = ()
    exclude_checks: Tuple[str, ...] = ()
    severities: Tuple[str, ...] = ()

    def matches(self, check: str, severity: Status) -> bool:
        if self.checks and not any(fnmatch.fnmatchcase(check, p) for p in self.checks):
            return False
        if any(fnmatch.fnmatchcase(check, p) for p in self.exclude_checks):
            return False
        if self.severities:
            return severity.level in self.severities
        return True


@config_record
class Recipient:
    """A receiver by name with its route: who the notification policy may tell."""

    name: str
    route: Route


def parse_route(section: Section) -> Route:
    """Read ``checks``, ``exclude_checks`` and ``severities`` from a receiver's table."""
    severities = section.strings("severities", ())
    for value in severities:
        if value not in LEVELS:
            section.error("severities", f'must list only {", ".join(LEVELS)}; got "{value}"')
    return Route(section.strings("checks", ()), section.strings("exclude_checks", ()), tuple(severities))
