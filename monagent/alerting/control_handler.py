"""Requests over the control socket (DECISIONS.md section 6), answered by the running pipeline.

A request is one JSON object with ``op``; the answer has ``ok`` and either the result
or ``error`` (a sentence for the user).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional

if TYPE_CHECKING:
    from monagent.alerting.pipeline import AlertPipeline


def _optional_float(value: Any) -> Optional[float]:
    return None if value is None else float(value)


def handle(pipeline: AlertPipeline, message: Mapping[str, Any]) -> Dict[str, Any]:
    op = message.get("op")
    try:
        if op == "ping":
            return {"ok": True}
        if op == "silence_add":
            silence = pipeline.add_silence(
                [str(m) for m in message.get("matchers", [])],
                ends_at=float(message["ends_at"]),
                starts_at=_optional_float(message.get("starts_at")),
                author=str(message.get("author", "")),
                comment=str(message.get("comment", "")),
            )
            return {"ok": True, "silence": silence.to_json()}
        if op == "silence_expire":
            return {"ok": True, "silence": pipeline.expire_silence(str(message["id"])).to_json()}
        if op == "ack":
            ack = pipeline.ack(
                str(message["key"]),
                author=str(message.get("author", "")),
                comment=str(message.get("comment", "")),
                expires_at=_optional_float(message.get("expires_at")),
            )
            return {"ok": True, "ack": ack.to_json()}
    except KeyError as exc:
        what = "silence" if op == "silence_expire" else "firing alert"
        return {"ok": False, "error": f"no {what} {exc.args[0]!s}" if exc.args else "missing field"}
    except (TypeError, ValueError) as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": False, "error": f"unknown request {op!r}"}
