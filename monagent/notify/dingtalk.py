"""The DingTalk custom-robot receiver: one signed markdown request per batch.

Every request is signed afresh (timestamp in ms, HMAC-SHA256 of ``timestamp\\nsecret``,
base64, URL-encoded once). HTTP 200 is not success: only ``errcode`` 0 is. Every other
errcode of the reference table maps to an :class:`~monagent.events.OutcomeKind` and a
sentence saying what to fix. The access token and secret appear only in the request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple
from urllib.parse import quote_plus

from monagent.events import OutboxEntry, Outcome, OutcomeKind
from monagent.notify.chat_config import DingTalkConfig
from monagent.notify.chat_text import Style, render, render_test, severity_name
from monagent.notify.coalesce import Batch, coalesce
from monagent.notify.delivery import scrub

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

QUOTA_PAUSE = 3600.0  # 90030 webhook over limit: do not retry soon


@dataclass(frozen=True)
class ErrCode:
    kind: OutcomeKind
    meaning: str
    fix: str


_BROKEN, _RETRY, _LOCKED, _REJECTED, _LARGE = (
    OutcomeKind.BROKEN,
    OutcomeKind.RETRY,
    OutcomeKind.LOCKED_OUT,
    OutcomeKind.REJECTED,
    OutcomeKind.TOO_LARGE,
)
_TOKEN_FIX = "copy the whole webhook URL again from the robot's settings (群设置 → 智能群助手 → the robot)"  # noqa: S105 - advice, not a password
ERRCODES: Dict[int, ErrCode] = {
    0: ErrCode(OutcomeKind.DELIVERED, "ok", ""),
    -1: ErrCode(_RETRY, "DingTalk is busy", "nothing; monagent retries with backoff"),
    300001: ErrCode(_BROKEN, "the access token does not exist", _TOKEN_FIX),
    300005: ErrCode(_BROKEN, "the access token does not exist (external groups answer this too)", _TOKEN_FIX),
    400101: ErrCode(_BROKEN, "the access token does not exist", _TOKEN_FIX),
    400013: ErrCode(_BROKEN, "the group was disbanded", "create a robot in a live group and update the config"),
    400102: ErrCode(_BROKEN, "the robot is disabled", "ask a group admin to re-enable the robot"),
    400105: ErrCode(_BROKEN, "unsupported msgtype", "report a monagent bug"),
    400106: ErrCode(_BROKEN, "the robot does not exist or is not in the group", _TOKEN_FIX),
    410100: ErrCode(
        _LOCKED,
        "sending too fast: the robot is rate limited for 10 minutes",
        "lower max_sends_per_minute, or check that nothing else sends through this robot",
    ),
    130101: ErrCode(
        _LOCKED,
        "sending too fast (over 20 a minute): the robot is rate limited for 10 minutes",
        "lower max_sends_per_minute, or check that nothing else sends through this robot",
    ),
    430101: ErrCode(_REJECTED, "content rejected: unsafe external link", "none; the message is resent without links"),
    430102: ErrCode(_REJECTED, "content rejected: unsuitable text", "none; a reduced message is tried once"),
    430103: ErrCode(_REJECTED, "content rejected: unsuitable image", "none; a reduced message is tried once"),
    430104: ErrCode(_REJECTED, "content rejected: unsuitable content", "none; a reduced message is tried once"),
    460101: ErrCode(_LARGE, "the message is over 20,000 bytes", "none; monagent truncates and resends"),
    101002: ErrCode(_LARGE, "the message is too long", "none; monagent truncates and resends"),
    40035: ErrCode(_BROKEN, "the request body is missing", "report a monagent bug"),
    43004: ErrCode(_BROKEN, "invalid HTTP Content-Type", "report a monagent bug (or a proxy rewrites requests)"),
    90030: ErrCode(_LOCKED, "the robot's message quota is used up", "wait for the quota to renew (monthly)"),
}
_SECURITY_310000 = (
    (
        ("keyword", "关键词"),
        "the message has none of the robot's keywords",
        "set keywords = [...] to the robot's 自定义关键词 (monagent puts one in the title and body)",
    ),
    (
        ("whitelist", "白名单", " ip "),
        "this host's public IP is not in the robot's IP allowlist",
        "add the egress IP or range under 安全设置 → IP地址(段)",
    ),
    (
        ("timestamp", "时间戳已过期", "时间戳无效"),
        "the signature timestamp is more than an hour off",
        "fix this host's clock (NTP); monagent signs every request afresh",
    ),
    (("sign", "签名"), "the signature does not match", 'copy the SEC… secret again from 安全设置 → 加签 into secret = "..."'),
)


def explain(code: int, errmsg: str = "") -> ErrCode:
    """What DingTalk's ``errcode`` means and what to fix (310000 needs the errmsg to tell its causes apart)."""
    if code == 310000:
        text = f" {errmsg.lower()} "
        for words, meaning, fix in _SECURITY_310000:
            if words[0] == "timestamp" and ("sign not match" in text or "签名不匹配" in text):
                continue
            if any(w in text for w in words):
                return ErrCode(_BROKEN, meaning, fix)
        return ErrCode(
            _BROKEN,
            "a security setting rejected the message (keyword, signature or IP allowlist)",
            "compare keywords/secret with the robot's 安全设置",
        )
    return ERRCODES.get(code, ErrCode(_RETRY, f"unknown errcode {code}", "none known; retried with backoff"))


def sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's signature: base64(HMAC-SHA256(key=secret, msg="timestamp\\nsecret")), URL-encoded once."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode("ascii"))


@dataclass(frozen=True)
class Reply:
    """The raw answer of one request, for ``monagent notify-test``."""

    outcome: Outcome
    http_status: Optional[int] = None
    errcode: Optional[int] = None
    errmsg: str = ""


class DingTalkReceiver:
    """Sends batches to one robot. ``session`` may be injected (tests); TLS verification stays on."""

    def __init__(self, config: DingTalkConfig, session: Optional[requests.Session] = None) -> None:
        self.config = config
        self.name = config.receiver_name
        self.style = Style(
            config.language,
            config.timezone,
            config.keywords,
            {sev: m.at_mobiles + m.at_user_ids for sev, m in config.mentions.items()},
        )
        self._session = session
        self._stale_timestamps = 0

    # -- the receiver protocols
    def send(self, entries: Sequence[OutboxEntry], now: float) -> Outcome:
        """monagent.notify.base.Receiver: the entries as one message (no coalescing state kept)."""
        plan = coalesce(entries)
        return self.deliver(Batch(plan.items, budget=self.config.delivery.body_budget), now)

    def deliver(self, batch: Batch, now: float) -> Outcome:
        at = self._at(batch)
        message = render(batch, self.style, lambda title, text: len(self._body(title, text, at)))
        return self.post(self._body(message.title, message.text, at), now).outcome

    def send_test(self, now: float, host: str) -> Reply:
        message = render_test(self.config.name, self.style, now, host)
        return self.post(self._body(message.title, message.text, {}), now)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    # -- building the request
    def _at(self, batch: Batch) -> Dict[str, Any]:
        mobiles: List[str] = []
        users: List[str] = []
        at_all = False
        for item in batch.items:
            if not item.is_problem or item.event.kind.value == "reminder":
                continue
            mention = self.config.mentions.get(severity_name(item.event.severity))
            if mention is None:
                continue
            mobiles += [m for m in mention.at_mobiles if m not in mobiles]
            users += [u for u in mention.at_user_ids if u not in users]
            at_all = at_all or mention.at_all
        return {"atMobiles": mobiles, "atUserIds": users, "isAtAll": at_all} if (mobiles or users or at_all) else {}

    @staticmethod
    def _body(title: str, text: str, at: Dict[str, Any]) -> bytes:
        payload: Dict[str, Any] = {"msgtype": "markdown", "markdown": {"title": title, "text": text}}
        if at:
            payload["at"] = at
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def url(self, now: float) -> str:
        url = self.config.webhook.reveal()
        if self.config.secret:
            timestamp = int(now * 1000)
            url += f"&timestamp={timestamp}&sign={sign(self.config.secret.reveal(), timestamp)}"
        return url

    # -- sending
    def post(self, body: bytes, now: float) -> Reply:
        import requests  # here, not at the top: keeps `monagent --help` fast

        from monagent.notify import http

        if self._session is None:
            self._session = http.new_session()  # proxies from HTTP(S)_PROXY/NO_PROXY; verify=True
        try:
            reply = http.post(
                self._session,
                self.url(now),
                data=body,
                timeout=self.config.timeout,
                headers={"Content-Type": "application/json; charset=utf-8"},
            )
        except http.Redirected as exc:
            return Reply(Outcome(OutcomeKind.BROKEN, f"{exc} (check webhook)"))
        except http.HttpFailure as exc:
            return Reply(Outcome(OutcomeKind.RETRY, str(exc)))
        except requests.RequestException as exc:
            from monagent.notify.neterror import describe_network_error

            said = describe_network_error(exc, self.config.timeout) or scrub(str(exc))[:300]
            reason = f"network error: {type(exc).__name__}: {said}"
            return Reply(Outcome(OutcomeKind.RETRY, reason))
        return self._reply(reply.status, reply.body, now)

    def _reply(self, status: int, content: bytes, now: float) -> Reply:
        try:
            data = json.loads(content.decode("utf-8"))
            code, errmsg = int(data["errcode"]), scrub(str(data.get("errmsg", "")))[:300]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return Reply(self._http_outcome(status), status)
        return Reply(self._classify(code, errmsg, now), status, code, errmsg)

    def _http_outcome(self, status: int) -> Outcome:
        if status == 429:
            return Outcome(OutcomeKind.LOCKED_OUT, f"HTTP {status} (too many requests)", code=status)
        if 400 <= status < 500 and status != 408:
            return Outcome(OutcomeKind.BROKEN, f"HTTP {status} from the webhook URL: check webhook (or the proxy)", code=status)
        return Outcome(OutcomeKind.RETRY, f"HTTP {status} without a DingTalk answer", code=status)

    def _classify(self, code: int, errmsg: str, now: float) -> Outcome:
        info = explain(code, errmsg)
        if info.kind == OutcomeKind.DELIVERED:
            self._stale_timestamps = 0
            return Outcome(OutcomeKind.DELIVERED, code=0)
        reason = f"DingTalk errcode {code}: {errmsg or info.meaning} ({info.meaning}; fix: {info.fix})"
        if code == 310000 and "clock" in info.fix:
            self._stale_timestamps += 1
            if self._stale_timestamps == 1:  # re-sign with a fresh timestamp and retry once
                return Outcome(OutcomeKind.RETRY, reason, not_before=now, code=code)
        if code == 90030:
            return Outcome(info.kind, reason, not_before=now + QUOTA_PAUSE, code=code)
        return Outcome(info.kind, reason, code=code)


AGENT_WOULD = {  # what the agent does with a message after an outcome (for notify-test)
    OutcomeKind.RETRY: "the agent would keep the message and retry",
    OutcomeKind.BROKEN: "the agent would keep the message and stop sending until this is fixed",
    OutcomeKind.LOCKED_OUT: "the agent would keep the message and pause",
}


def describe(reply: Reply) -> Tuple[str, str]:
    """(outcome line, meaning line) for ``monagent notify-test``."""
    if reply.errcode is None:  # no answer from DingTalk at all: say so, and what the agent would do
        then = AGENT_WOULD.get(reply.outcome.kind, reply.outcome.kind.value)
        return f"no errcode from DingTalk ({then})", reply.outcome.reason
    info = explain(reply.errcode, reply.errmsg)
    meaning = info.meaning if reply.errcode != 0 else "the robot accepted the message"
    fix = f"; fix: {info.fix}" if info.fix and reply.errcode != 0 else ""
    return f"errcode {reply.errcode} ({reply.errmsg})", meaning + fix
