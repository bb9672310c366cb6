"""Validating a check instance's options against its keyword-only constructor arguments.

Supported annotations: ``str``, ``int``, ``float``, ``bool``, ``Path``,
``Sequence[str]``/``List[str]``/``Tuple[str, ...]``, ``Mapping[str, str]``/``Dict[str, ...]``,
``Optional[...]`` of those, and ``Any`` (accepted as parsed). A duration option is a
``float`` whose name ends in ``_seconds`` or is annotated with :data:`Duration`.
"""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Sequence, Tuple

from monagent.confread import Section, _describe, parse_duration


class Duration(float):
    """Annotation for an option given as a duration string (``"30s"``); the check gets seconds."""


def option_signature(check_class: type) -> Dict[str, inspect.Parameter]:
    """The keyword-only parameters of ``check_class.__init__`` (its options)."""
    try:
        sig = inspect.signature(check_class.__init__)  # type: ignore[misc]
    except (TypeError, ValueError):
        return {}
    return {
        name: p
        for name, p in sig.parameters.items()
        if name != "self" and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    }


def instance_kwargs(check_class: type, options: Mapping[str, Any], timeout: float) -> Dict[str, Any]:
    """The keyword arguments that build one instance: its validated options, plus the instance's
    timeout for a type that takes a ``timeout`` option (the Nagios check's hard deadline)."""
    kwargs = dict(options)
    if "timeout" in option_signature(check_class) and "timeout" not in kwargs:
        kwargs["timeout"] = timeout
    return kwargs


def _hints(check_class: type) -> Dict[str, Any]:
    try:
        return typing.get_type_hints(check_class.__init__)  # type: ignore[misc]
    except Exception:  # noqa: BLE001 - a plugin annotation that does not evaluate (NameError, TypeError on 3.9): options as Any
        return {}


def validate_options(check_class: type, type_name: str, section: Section, keys: Sequence[str]) -> Mapping[str, Any]:
    """Convert and check every option key; report unknown and missing ones with the accepted list."""
    params = option_signature(check_class)
    hints = _hints(check_class)
    accepted = ", ".join(sorted(params)) or "none"
    result: Dict[str, Any] = {}
    for key in keys:
        section.mark_used(key)
        if key not in params:
            import difflib

            close = difflib.get_close_matches(
                key, list(params) + ["type", "interval", "timeout", "enabled", "thresholds", "alerting"], n=1, cutoff=0.6
            )
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            own = f"accepted options: {accepted}" if params else "this check type takes no options of its own"
            section.error(key, f'unknown option for check type "{type_name}"{hint}; {own}')
            continue
        ok, value, message = convert(section.raw(key), hints.get(key, Any), section)
        if ok:
            result[key] = value
        else:
            section.error(key, message)
    for name, param in params.items():
        if param.default is inspect.Parameter.empty and name not in keys:
            section.error(name, f'is required by check type "{type_name}"')
    return result


Converted = Tuple[bool, Any, str]
"""``(ok, converted value, message)`` of one option value."""


def convert(value: Any, annotation: Any, section: Section) -> Converted:
    """Return ``(ok, converted, message)`` for one option value."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union:
        non_none = [a for a in args if a is not type(None)]
        return convert(value, non_none[0] if len(non_none) == 1 else Any, section)
    if annotation is Any:
        return True, value, ""
    scalar = _SCALARS.get(annotation)
    if scalar is not None:
        return scalar(value)
    name = getattr(origin, "__name__", "")
    if origin in (list, tuple) or name in ("Sequence", "list", "tuple"):
        return _convert_sequence(value, args[0] if args else Any, section)
    if origin is dict or name in ("Mapping", "dict"):
        return _convert_mapping(value, args[1] if len(args) == 2 else Any, section)
    return True, value, ""


def _bad(what: str, value: Any) -> Converted:
    return False, None, f"must be {what}, got {_describe(value)}"


def _duration(value: Any) -> Converted:
    if isinstance(value, str):
        try:
            return True, parse_duration(value), ""
        except ValueError:
            pass
    return _bad('a duration such as "30s", "5m" or "4h"', value)


def _bool(value: Any) -> Converted:
    return (True, value, "") if isinstance(value, bool) else _bad("true or false", value)


def _int(value: Any) -> Converted:
    ok = isinstance(value, int) and not isinstance(value, bool)
    return (True, value, "") if ok else _bad("an integer", value)


def _float(value: Any) -> Converted:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return (True, float(value), "") if ok else _bad("a number", value)


def _str(value: Any) -> Converted:
    return (True, value, "") if isinstance(value, str) else _bad("a string", value)


def _path(value: Any) -> Converted:
    return (True, Path(value), "") if isinstance(value, str) else _bad("a path string", value)


_SCALARS: Dict[Any, Callable[[Any], Converted]] = {
    Duration: _duration,
    bool: _bool,
    int: _int,
    float: _float,
    str: _str,
    Path: _path,
}


def _convert_sequence(value: Any, inner: Any, section: Section) -> Converted:
    if not isinstance(value, list):
        return _bad("an array", value)
    out = []
    for item in value:
        ok, converted, message = convert(item, inner, section)
        if not ok:
            return False, None, f"array items {message}"
        out.append(converted)
    return True, tuple(out), ""


def _convert_mapping(value: Any, inner: Any, section: Section) -> Converted:
    if not isinstance(value, dict):
        return _bad("a table", value)
    result = {}
    for key, item in value.items():
        ok, converted, message = convert(item, inner, section)
        if not ok:
            return False, None, f"values {message}"
        result[key] = converted
    return True, result, ""
