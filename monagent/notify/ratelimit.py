"""Pacing a chat receiver: a sliding-window send limit and exponential backoff with jitter.

Times are monotonic seconds supplied by the caller, so tests drive both with a fake clock.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from typing import Callable, Deque, Dict, Optional

WINDOW = 60.0


class SlidingWindow:
    """At most ``limit`` sends in any rolling ``window`` seconds (DingTalk: 20 a minute per robot)."""

    def __init__(self, limit: int, window: float = WINDOW) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.window = window
        self._sends: Deque[float] = deque()

    def _prune(self, now: float) -> None:
        while self._sends and (self._sends[0] <= now - self.window or self._sends[0] > now + self.window):
            self._sends.popleft()  # expired, or stamped before the clock went backwards

    def allows(self, now: float) -> bool:
        self._prune(now)
        return len(self._sends) < self.limit

    def record(self, now: float) -> None:
        self._prune(now)
        self._sends.append(now)

    def next_free(self, now: float) -> float:
        """The earliest time a send is allowed (``now`` when one is allowed already)."""
        self._prune(now)
        if len(self._sends) < self.limit:
            return now
        return self._sends[len(self._sends) - self.limit] + self.window

    def count(self, now: float) -> int:
        self._prune(now)
        return len(self._sends)


class Backoff:
    """Exponential backoff with full jitter in [delay/2, delay]: initial, 2x, 4x ... capped at ``maximum``."""

    def __init__(self, initial: float, maximum: float, rand: Optional[Callable[[], float]] = None) -> None:
        self.initial = initial
        self.maximum = maximum
        self.failures = 0
        self._rand: Callable[[], float] = rand or random.random  # jitter, not cryptography

    def next_delay(self) -> float:
        """The delay after one more failure."""
        delay = min(self.maximum, self.initial * (2.0 ** min(self.failures, 30)))
        self.failures += 1
        return delay * (0.5 + 0.5 * self._rand())

    def jitter(self, spread: float) -> float:
        return spread * self._rand()

    def reset(self) -> None:
        self.failures = 0


_SHARED: Dict[str, SlidingWindow] = {}
_SHARED_LOCK = threading.Lock()


def shared_window(target: str, limit: int) -> SlidingWindow:
    """The window of one robot URL, shared by every dispatcher of this process that sends to it.

    DingTalk counts per robot, so two receivers configured with the same webhook share one
    window, and a dispatcher rebuilt on reload keeps counting the sends of the old one.
    ``target`` is a digest of the URL, never the URL itself (it holds the access token).
    """
    with _SHARED_LOCK:
        window = _SHARED.get(target)
        if window is None or window.limit != limit:
            fresh = SlidingWindow(limit)
            if window is not None:
                fresh._sends.extend(window._sends)
            window = _SHARED[target] = fresh
        return window
