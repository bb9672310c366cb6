"""Label matchers on alert keys, shared by silences, maintenance windows and inhibit rules."""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Sequence, Tuple

from monagent.records import config_record

if TYPE_CHECKING:  # annotations only: the config (monagent validate) does not need the event types
    from monagent.events import AlertKey

LABELS = ("check", "subject", "metric", "check_type", "type", "severity")


def key_labels(key: AlertKey, check_type: str = "", severity: str = "") -> Dict[str, str]:
    """The labels a matcher sees; ``type`` is short for ``check_type``; ``severity`` is the alert's current one."""
    return {
        "check": key.check,
        "subject": key.subject,
        "metric": key.metric,
        "check_type": check_type,
        "type": check_type,
        "severity": severity,
    }


@config_record
class Matcher:
    """Every listed label must match one of its globs; an empty matcher matches every key."""

    pairs: Tuple[Tuple[str, Tuple[str, ...]], ...] = ()

    def matches(self, key: AlertKey, check_type: str = "", severity: str = "") -> bool:
        labels = key_labels(key, check_type, severity)
        return all(any(fnmatch.fnmatchcase(labels[label], p) for p in patterns) for label, patterns in self.pairs)

    def describe(self) -> str:
        return ", ".join(f"{label}={'|'.join(patterns)}" for label, patterns in self.pairs) or "everything"

    @classmethod
    def parse(cls, items: Sequence[str]) -> Matcher:
        """``["check=root_disk", "subject=/var"]`` (the CLI form; ``subject=`` is the empty subject).

        Raises ValueError on a bad item."""
        pairs = []
        for item in items:
            label, sep, value = item.partition("=")
            label = label.strip()
            if not sep or label not in LABELS:
                raise ValueError(f'bad matcher "{item}": use LABEL=GLOB with LABEL one of {", ".join(LABELS)}')
            pairs.append((label, (value,)))
        return cls(tuple(pairs))

    def to_json(self) -> List[List[Any]]:
        return [[label, list(patterns)] for label, patterns in self.pairs]

    @classmethod
    def from_json(cls, data: Sequence[Sequence[Any]]) -> Matcher:
        return cls(tuple((str(label), tuple(str(p) for p in patterns)) for label, patterns in data))


def find_key(keys: Iterable[AlertKey], text: str) -> Optional[AlertKey]:
    """The key whose display form (``root_disk /var used_percent``), id or ``check/subject/metric`` is ``text``."""
    for key in keys:
        if text in (str(key), key.as_id(), f"{key.check}/{key.subject}/{key.metric}"):
            return key
    return None
