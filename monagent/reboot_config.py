"""The ``[reboot]`` section: how the end of the previous boot is explained at the first start in a
new boot (see docs/kdump.md, "Every reboot explained")."""

from __future__ import annotations

from typing import Tuple

from monagent.api import Status
from monagent.confread import Section
from monagent.records import config_record

PSTORE_DIRS = ("/sys/fs/pstore", "/var/lib/systemd/pstore")


@config_record
class RebootConfig:
    enabled: bool = True
    planned: str = "notice"  # notice | silent
    unplanned_severity: Status = Status.CRITICAL
    journal: bool = True
    journalctl: str = "journalctl"
    journal_timeout: float = 10.0
    pstore_dirs: Tuple[str, ...] = PSTORE_DIRS
    pstore_timeout: float = 10.0
    wait: float = 30.0  # at most this long for the first scan of every kdump check
    kernel_lines: int = 10  # last kernel lines of the previous boot quoted in an unplanned-reboot message


def parse_reboot(section: Section) -> RebootConfig:
    severity = section.string("unplanned_severity", "critical", choices=("critical", "warning"))
    dirs = tuple(section.strings("pstore_dirs", PSTORE_DIRS))
    for index, directory in enumerate(dirs):
        if not directory.startswith("/"):
            section.error("pstore_dirs", f'entry {index + 1} must be an absolute path, got "{directory}"')
    config = RebootConfig(
        enabled=section.boolean("enabled", True),
        planned=section.string("planned", "notice", choices=("notice", "silent")),
        unplanned_severity=Status.CRITICAL if severity == "critical" else Status.WARNING,
        journal=section.boolean("journal", True),
        journalctl=section.string("journalctl", "journalctl"),
        journal_timeout=section.duration("journal_timeout", 10.0, minimum=0.1),
        pstore_dirs=dirs,
        pstore_timeout=section.duration("pstore_timeout", 10.0, minimum=0.1),
        wait=section.duration("wait", 30.0, minimum=0.1),
        kernel_lines=section.integer("kernel_lines", 10, minimum=0, maximum=200),
    )
    section.finish()
    return config
