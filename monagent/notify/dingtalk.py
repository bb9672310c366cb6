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
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple
from urllib.parse import quote_plus

from monagent.events import OutboxEntry, Outcome, OutcomeKind
from monagent.formatting import Formatter
from monagent.lazylog import get_logger
from monagent.notify.chat_config import DingTalkConfig
from monagent.notify.chat_text import Style, render, render_test, severity_name
from monagent.notify.coalesce import Batch, coalesce
from monagent.notify.delivery import scrub
from monagent.records import record
from monagent.wording import ENGLISH

if TYPE_CHECKING:
    import requests

log = get_logger(__name__)

QUOTA_PAUSE = 3600.0  # 90030 webhook over limit: do not retry soon


@record
class ErrCode:
    """What an errcode means and what to fix, by catalogue id (``dingtalk.err.*``), in any language."""

    kind: OutcomeKind
    key: str  # dingtalk.err.KEY is the meaning, dingtalk.fix.FIX the fix
    fix_key: str = ""
    code: int = 0  # for the unknown-errcode text

    def meaning_in(self, fmt: Formatter) -> str:
        return fmt.say(f"dingtalk.err.{self.key}", code=self.code)

    def fix_in(self, fmt: Formatter) -> str:
        return fmt.say(f"dingtalk.fix.{self.fix_key}") if self.fix_key else ""

    @property
    def meaning(self) -> str:
        """In English (the log line and the receiver's stored last error)."""
        return self.meaning_in(ENGLISH)

    @property
    def fix(self) -> str:
        return self.fix_in(ENGLISH)


_BROKEN, _RETRY, _LOCKED, _REJECTED, _LARGE = (
    OutcomeKind.BROKEN,
    OutcomeKind.RETRY,
    OutcomeKind.LOCKED_OUT,
    OutcomeKind.REJECTED,
    OutcomeKind.TOO_LARGE,
)
ERRCODES: Dict[int, ErrCode] = {
    0: ErrCode(OutcomeKind.DELIVERED, "ok"),
    -1: ErrCode(_RETRY, "busy", "retried"),
    300001: ErrCode(_BROKEN, "token", "token"),
    300005: ErrCode(_BROKEN, "token_external", "token"),
    400101: ErrCode(_BROKEN, "token", "token"),
    400013: ErrCode(_BROKEN, "disbanded", "disbanded"),
    400102: ErrCode(_BROKEN, "disabled", "disabled"),
    400105: ErrCode(_BROKEN, "msgtype", "bug"),
    400106: ErrCode(_BROKEN, "not_in_group", "token"),
    410100: ErrCode(_LOCKED, "rate_limited", "rate"),
    130101: ErrCode(_LOCKED, "rate_limited_20", "rate"),
    430101: ErrCode(_REJECTED, "link", "link"),
    430102: ErrCode(_REJECTED, "text", "reduced"),
    430103: ErrCode(_REJECTED, "image", "reduced"),
    430104: ErrCode(_REJECTED, "content", "reduced"),
    460101: ErrCode(_LARGE, "too_large", "truncated"),
    101002: ErrCode(_LARGE, "too_long", "truncated"),
    40035: ErrCode(_BROKEN, "no_body", "bug"),
    43004: ErrCode(_BROKEN, "content_type", "proxy"),
    90030: ErrCode(_LOCKED, "quota", "quota"),
}
_SECURITY_310000 = (
    (("keyword", "关键词"), "keyword", "keyword"),
    (("whitelist", "白名单", " ip "), "allowlist", "allowlist"),
    (("timestamp", "时间戳已过期", "时间戳无效"), "timestamp", "clock"),
    (("sign", "签名"), "signature", "secret"),
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
        return ErrCode(_BROKEN, "security", "security")
    return ERRCODES.get(code, ErrCode(_RETRY, "unknown", "unknown", code))


def sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's signature: base64(HMAC-SHA256(key=secret, msg="timestamp\\nsecret")), URL-encoded once."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode("ascii"))


@record
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
        if code == 310000 and info.fix_key == "clock":
            self._stale_timestamps += 1
            if self._stale_timestamps == 1:  # re-sign with a fresh timestamp and retry once
                return Outcome(OutcomeKind.RETRY, reason, not_before=now, code=code)
        if code == 90030:
            return Outcome(info.kind, reason, not_before=now + QUOTA_PAUSE, code=code)
        return Outcome(info.kind, reason, code=code)


AGENT_WOULD = {  # what the agent does with a message after an outcome (for notify-test): catalogue ids
    OutcomeKind.RETRY: "notify_test.would_retry",
    OutcomeKind.BROKEN: "notify_test.would_stop",
    OutcomeKind.LOCKED_OUT: "notify_test.would_pause",
}


def describe(reply: Reply, fmt: Formatter = ENGLISH) -> Tuple[str, str]:
    """(outcome line, meaning line) for ``monagent notify-test``, in ``fmt``'s language."""
    if reply.errcode is None:  # no answer from DingTalk at all: say so, and what the agent would do
        then = fmt.say(AGENT_WOULD[reply.outcome.kind]) if reply.outcome.kind in AGENT_WOULD else reply.outcome.kind.value
        return fmt.say("notify_test.no_errcode", then=then), reply.outcome.reason
    info = explain(reply.errcode, reply.errmsg)
    if reply.errcode == 0:
        return fmt.say("notify_test.errcode", code=0, errmsg=reply.errmsg), fmt.say("notify_test.accepted")
    fix = info.fix_in(fmt)
    meaning = fmt.say("notify_test.meaning_fix", meaning=info.meaning_in(fmt), fix=fix) if fix else info.meaning_in(fmt)
    return fmt.say("notify_test.errcode", code=reply.errcode, errmsg=reply.errmsg), meaning
