"""No module outside monagent/formatting.py formats a time, a duration, a byte size or a threshold.

A grep over the package and the built-in checks for the telltales: strftime, division by 1024 or
2**20/2**30, binary unit names in f-strings, private human_*/format_* helpers, and a threshold
written as an operator and a number. Each place still allowed is listed with why; a new one fails.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TELLTALES = re.compile(
    r"strftime|/ ?1024\b|2 ?\*\* ?(?:20|30)\b|\"(?:KiB|MiB|GiB)\"|\{[^}]*:\.\d+f\} ?(?:KiB|MiB|GiB)"
    r"|def (?:human_|_human|format_number|format_value|format_bytes|_gib|_mib|_fmt_seconds|_seconds\b)"
    r"|\((?:>=|<=) \{"
    r"|fromtimestamp\(|divmod\([^)]*, ?(?:60|3600|86400)\)|// ?60\b"  # a time or a duration taken apart by hand
    r"|\{[^}]*:\.\d+f\} ?(?:ms|s|h|%)\b|:\.0f\}%"  # a number rounded and given a unit in an f-string
)
ALLOWED = {
    "monagent/formatting.py": "the formatter itself",
    "monagent/store.py": "a file name stamp (state.db.corrupt-20260921T141320), not a time for a reader",
    "monagent/nagios.py": "Nagios perfdata and range syntax (machine format, not prose)",
    "monagent/notify/http.py": "a protocol limit in an exception message (64 KiB); not yet through the formatter",
    "monagent/scheduler.py": "_fmt_seconds in a log line's run duration; not yet through the formatter",
    "monagent/notify/alertmanager.py": "RFC 3339 timestamps of the Alertmanager API (a protocol field, not prose)",
    "monagent/alerting/config.py": "the local time of day a maintenance window is computed in (not shown)",
    "monagent/alerting/status.py": "a maintenance window's configured HH:MM-HH:MM, shown as configured",
}


def test_no_module_but_the_formatter_formats_times_durations_sizes_or_thresholds():
    found = []
    for path in sorted([*ROOT.joinpath("monagent").rglob("*.py"), *ROOT.joinpath("checks").glob("*.py")]):
        name = path.relative_to(ROOT).as_posix()
        if name in ALLOWED:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if TELLTALES.search(line):
                found.append(f"{name}:{number}: {line.strip()}")
    assert found == []


def test_the_allowed_places_still_need_their_exception():
    stale = [name for name in ALLOWED if name != "monagent/formatting.py" and not _has_telltale(ROOT / name)]
    assert stale == []


def _has_telltale(path: Path) -> bool:
    return any(TELLTALES.search(line) for line in path.read_text(encoding="utf-8").splitlines())
