"""A module's logger that imports :mod:`logging` the first time it is used.

``logging`` brings ``traceback``, ``threading``, ``string`` and more: about 5 ms of every command's
start-up. ``monagent validate`` on a good file, ``--help`` and the other short commands log
nothing, so the modules they import take their logger from here::

    from monagent.lazylog import get_logger

    log = get_logger(__name__)

and ``log.warning(...)`` then works as ``logging.getLogger(__name__).warning(...)`` does, with the
same logger (levels, handlers, ``caplog``). A logger's settings (``setLevel``, ``disabled``) are
made on ``logging.getLogger(name)`` itself, never on the stand-in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import logging

_CALLS = frozenset(("debug", "info", "warning", "error", "exception", "critical", "log", "isEnabledFor"))


class _LazyLogger:
    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attribute: str) -> Any:
        import logging

        value = getattr(logging.getLogger(self.name), attribute)
        if attribute in _CALLS:
            self.__dict__[attribute] = value  # the bound method: later calls go straight to it
        return value

    def __setattr__(self, attribute: str, value: Any) -> None:
        if attribute != "name":
            raise AttributeError(f"set {attribute} on logging.getLogger({self.name!r}), not on its stand-in")
        object.__setattr__(self, attribute, value)

    def __repr__(self) -> str:
        return f"<lazy logger {self.name}>"


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)``, imported and looked up at the first call."""
    return _LazyLogger(name)  # type: ignore[return-value]
