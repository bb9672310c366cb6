"""Requests over the control socket (docs/design/decisions.md section 6), answered by the running pipeline.

A request is one JSON object with ``op``; the answer has ``ok`` and either the result
or ``error`` (a sentence for the user). ``ping`` and ``paths`` are answered here; silences and acks
are decided by :mod:`monagent.alerting.silence_ack`, the same rules the CLI applies when no agent
runs. Every request is validated like configuration before it touches anything; a bad request gets
an error answer and changes nothing.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional

from monagent.alerting import silence_ack
from monagent.alerting.silence_ack import BadRequest

if TYPE_CHECKING:
    from monagent.alerting.pipeline import AlertPipeline

# The socket's own requests; the silence and ack ones are silence_ack.FIELDS.
FIELDS: Dict[str, silence_ack.Spec] = {
    "ping": {},
    "paths": {},  # where this agent keeps its state: the CLI reads that, whatever the file says now
    **silence_ack.FIELDS,
}


def handle(pipeline: AlertPipeline, message: Mapping[str, Any], now: Optional[float] = None) -> Dict[str, Any]:
    now = time.time() if now is None else now
    try:
        op, _ = silence_ack.validate(message, now, FIELDS)
    except BadRequest as exc:
        return silence_ack.refusal(exc)
    if op == "ping":
        return {"ok": True, **pipeline.health()}
    if op == "paths":
        return {"ok": True, "state_dir": str(pipeline.config.agent.state_dir)}
    return pipeline.request(message, now)


class ControlHandler:
    """The control socket's handler for one pipeline (the pipeline itself knows nothing of the socket)."""

    def __init__(self, pipeline: AlertPipeline) -> None:
        self.pipeline = pipeline

    def __call__(self, message: Mapping[str, Any]) -> Dict[str, Any]:
        return handle(self.pipeline, message)
