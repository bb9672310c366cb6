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
from typing import Any, Dict, Mapping, Sequence

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


def _hints(check_class: type) -> Dict[str, Any]:
    try:
        return typing.get_type_hints(check_class.__init__)  # type: ignore[misc]
    except Exception:  # a plugin's annotation that does not evaluate: treat options as Any
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

            close = difflib.get_close_matches(key, list(params) + ["type", "interval", "timeout", "enabled",
                                                                     "thresholds", "alerting"], n=1, cutoff=0.6)
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


def convert(value: Any, annotation: Any, section: Section) -> tuple:
    """Return ``(ok, converted, message)`` for one option value."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union:
        non_none = [a for a in args if a is not type(None)]
        return convert(value, non_none[0] if len(non_none) == 1 else Any, section)
    if annotation is Any:
        return True, value, ""
    if annotation is Duration:
        if isinstance(value, str):
            try:
                return True, parse_duration(value), ""
            except ValueError:
                pass
        return False, None, f'must be a duration such as "30s", "5m" or "4h", got {_describe(value)}'
    if annotation is bool:
        return (True, value, "") if isinstance(value, bool) else (False, None, f"must be true or false, got {_describe(value)}")
    if annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return (True, value, "") if ok else (False, None, f"must be an integer, got {_describe(value)}")
    if annotation is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return (True, float(value), "") if ok else (False, None, f"must be a number, got {_describe(value)}")
    if annotation is str:
        return (True, value, "") if isinstance(value, str) else (False, None, f"must be a string, got {_describe(value)}")
    if annotation is Path:
        if isinstance(value, str):
            return True, Path(value), ""
        return False, None, f"must be a path string, got {_describe(value)}"
    if origin in (list, tuple, typing.Sequence, Sequence, typing.List, typing.Tuple) or (origin is not None and \
            getattr(origin, "__name__", "") in ("Sequence", "list", "tuple")):
        if not isinstance(value, list):
            return False, None, f"must be an array, got {_describe(value)}"
        inner = args[0] if args else Any
        out = []
        for item in value:
            ok, converted, message = convert(item, inner, section)
            if not ok:
                return False, None, f"array items {message}"
            out.append(converted)
        return True, tuple(out), ""
    if origin in (dict, typing.Mapping, Mapping) or getattr(origin, "__name__", "") in ("Mapping", "dict"):
        if not isinstance(value, dict):
            return False, None, f"must be a table, got {_describe(value)}"
        inner = args[1] if len(args) == 2 else Any
        result = {}
        for k, item in value.items():
            ok, converted, message = convert(item, inner, section)
            if not ok:
                return False, None, f"values {message}"
            result[k] = converted
        return True, result, ""
    return True, value, ""
