"""Building one dispatcher per configured receiver, as the receiver table says (``registry.RECEIVERS``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, List, Optional

from monagent.notify.registry import RECEIVERS, Setting

if TYPE_CHECKING:
    from monagent.notify.alertmanager import KeyValue
    from monagent.notify.base import Dispatcher
    from monagent.notify.config import NotifiersConfig


def build_dispatchers(
    notifiers: NotifiersConfig, host: str, store: KeyValue, started_at: Optional[float] = None
) -> List[Dispatcher]:
    """One per receiver, in the order of ``receiver_names``."""
    setting = Setting(host, store, time.time() if started_at is None else started_at)
    return [dispatcher for kind in RECEIVERS for dispatcher in kind.build(getattr(notifiers, kind.field), setting)]
