"""Replace personal data and secrets with consistent placeholders such as <EMAIL_1>.

Detectors are plain regular expressions plus validity checks (Luhn for cards, SSN
number ranges, IPv4 octets). Within one conversation the same value always gets the
same placeholder; numbering is per entity type. Text that already holds placeholders
is never re-redacted, and new values get numbers above the ones already present.
"""
from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable
from urllib.parse import parse_qsl, urlsplit

from deploysim.rules import PLACEHOLDER_RE
from deploysim.schemas import Conversation, Message, ToolCall

ENTITY_TYPES = ("EMAIL", "PHONE", "CARD", "SSN", "IP", "URL_SECRET", "API_KEY")

# On equal span length, the earlier type in this list wins.
_PRIORITY = {t: i for i, t in enumerate(("URL_SECRET", "API_KEY", "EMAIL", "CARD", "SSN", "IP", "PHONE"))}

DEFAULT_SECRET = "deploysim-default-redaction-secret"  # set DEPLOYSIM_REDACT_SECRET in production


@dataclass(frozen=True)
class Span:
    type: str
    start: int
    end: int
    value: str


# ---------------------------------------------------------------------------- detectors

_EMAIL_RE = re.compile(r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}\b")

_URL_RE = re.compile(
    r"\b(?:https?|ftp|wss?|postgres(?:ql)?|mysql|mongodb(?:\+srv)?|redis|amqps?)://[^\s<>\"'`]+",
    re.IGNORECASE,
)
_USERINFO_RE = re.compile(r"^[a-z][a-z0-9+.-]*://[^/?#@\s:]+:[^/?#@\s]+@", re.IGNORECASE)
_QUERY_NAME_RE = re.compile(r"[?&#;]([A-Za-z0-9_.\-\[\]]+)=[^&#;\s]+")
_SECRET_WORDS = {
    "token", "key", "secret", "password", "passwd", "pwd", "pass", "sig", "signature", "auth",
    "session", "sessionid", "credential", "credentials", "apikey", "jwt", "accesstoken", "privatekey",
}

_API_KEY_RES = [
    re.compile(r"(?<![\w-])sk-(?:proj-|ant-|live-|test-)?([A-Za-z0-9_-]{20,})"),
    re.compile(r"(?<![\w-])gh[pousr]_[A-Za-z0-9]{20,}\b"),
    re.compile(r"(?<![\w-])github_pat_[A-Za-z0-9_]{20,}"),
    re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"),
    re.compile(r"(?<![\w-])xox[abposr]-[A-Za-z0-9-]{10,}"),
    re.compile(r"(?<![\w-])AIza[0-9A-Za-z_-]{35}"),
    re.compile(r"(?<![\w-])glpat-[A-Za-z0-9_-]{20,}"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),  # JWT
]
_BEARER_RE = re.compile(r"\bBearer\s+([A-Za-z0-9._~+/=-]{16,})", re.IGNORECASE)
_WORDY_RE = re.compile(r"[a-z]+(?:[-_][a-z]+)*")  # "sk-learn-pipeline-..." is not a key

_CARD_RE = re.compile(
    r"(?<![\w-])(?:\d{4}([ -])\d{4}\1\d{4}\1\d{4}(?:\1\d{1,3})?"  # 4-4-4-4(-3)
    r"|\d{4}([ -])\d{6}\2\d{5}"  # Amex 4-6-5
    r"|\d{13,19})(?!\w)"
)
_SSN_RE = re.compile(r"(?<![\w-])(\d{3})-(\d{2})-(\d{4})(?![\w-])")
_IPV4_RE = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\.?\d|[A-Za-z_])")
_IPV6_RE = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")

_PHONE_RE = re.compile(
    r"(?<![\w+@/.=-])"
    r"(?:(?:\+|00)\d{1,3}[ .-]?)?"  # country code
    r"(?:\(\d{1,4}\)[ .-]?)?"  # area code in parentheses
    r"\d{1,5}(?:[ .-]\d{1,5}){0,5}"  # digit groups
    r"(?:\s?(?:x|ext\.?)\s?\d{1,6})?"  # extension
    r"(?![\w@-]|\.\d)"
)
_EXT_RE = re.compile(r"\s?(?:x|ext\.?)\s?\d{1,6}$")
_GROUP_SEP_RE = re.compile(r"[ .-]")


def luhn_ok(digits: str) -> bool:
    """Luhn checksum of a digit string."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def ssn_ok(area: str, group: str, serial: str) -> bool:
    """US SSN ranges: area not 000, 666 or 9xx; group not 00; serial not 0000."""
    return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"


def _url_has_secret(url: str) -> bool:
    if _USERINFO_RE.match(url):
        return True
    try:
        parts = urlsplit(url)
        names = [k for k, v in parse_qsl(parts.query, keep_blank_values=False)]
        names += [k for k, v in parse_qsl(parts.fragment, keep_blank_values=False)]
    except ValueError:
        names = []
    names += [m.group(1) for m in _QUERY_NAME_RE.finditer(url)]
    for name in names:
        low = name.lower()
        if low.replace("-", "").replace("_", "") in _SECRET_WORDS:
            return True
        if any(tok in _SECRET_WORDS for tok in re.split(r"[-_.\[\]]+", low)):
            return True
    return False


def _trim_url(url: str) -> str:
    """Drop sentence punctuation (and an unbalanced ')') from the end of a URL."""
    while url and url[-1] in ".,;:!?)]}":
        if url[-1] == ")" and url.count("(") >= url.count(")"):
            break
        url = url[:-1]
    return url


def _phone_ok(s: str) -> bool:
    """Whether a digit run looks like a phone number rather than some other number."""
    main = _EXT_RE.sub("", s)
    digits = re.sub(r"\D", "", main)
    intl = main.startswith("+") or main.startswith("00")
    paren = "(" in main
    if not 7 <= len(digits) <= 15:
        return False
    if re.fullmatch(r"\d{3}-\d{2}-\d{4}", main):  # SSN shape, valid or not
        return False
    if re.search(r"\b(?:1[89]|20)\d{2}-[01]\d-[0-3]\d\b|\b[0-3]?\d[-/.][01]?\d[-/.](?:1[89]|20)\d{2}\b", main):  # dates
        return False
    if intl:
        return len(digits) >= 8
    if paren:
        return len(digits) >= 8
    groups = [g for g in _GROUP_SEP_RE.split(main) if g]
    if len(groups) < 2 or len(digits) < 9:
        return False
    if any(len(g) == 1 for g in groups[1:]) or (len(groups[0]) == 1 and groups[0] not in "01"):
        return False
    us = re.fullmatch(r"(?:1[ .-])?\d{3}([ .-])\d{3}\1\d{4}", main)
    if "." in main:
        return bool(us)
    if " " in main and "-" not in main:
        # space-separated digit lists are common; accept US shape or a national trunk prefix 0
        return bool(us) or main.startswith("0")
    return True


def _phone_spans(text: str) -> Iterable[Span]:
    for m in _PHONE_RE.finditer(text):
        s = m.group(0)
        # the regex is greedy: shorten from the right until the number validates
        while s:
            if _phone_ok(s):
                yield Span("PHONE", m.start(), m.start() + len(s), s)
                break
            cut = max(s.rfind(" "), s.rfind("-"), s.rfind("."))
            if cut <= 0:
                break
            s = s[:cut]


def _api_key_spans(text: str) -> Iterable[Span]:
    for rx in _API_KEY_RES:
        for m in rx.finditer(text):
            if m.re is _API_KEY_RES[0] and _WORDY_RE.fullmatch(m.group(1)):
                continue
            yield Span("API_KEY", m.start(), m.end(), m.group(0))
    for m in _BEARER_RE.finditer(text):
        tok = m.group(1)
        if any(c.isdigit() for c in tok) or len(tok) >= 24:
            yield Span("API_KEY", m.start(1), m.end(1), tok)


def _candidates(text: str) -> Iterable[Span]:
    for m in _URL_RE.finditer(text):
        url = _trim_url(m.group(0))
        if url and _url_has_secret(url):
            yield Span("URL_SECRET", m.start(), m.start() + len(url), url)
    yield from _api_key_spans(text)
    for m in _EMAIL_RE.finditer(text):
        yield Span("EMAIL", m.start(), m.end(), m.group(0))
    for m in _CARD_RE.finditer(text):
        digits = re.sub(r"\D", "", m.group(0))
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            yield Span("CARD", m.start(), m.end(), m.group(0))
    for m in _SSN_RE.finditer(text):
        if ssn_ok(*m.groups()):
            yield Span("SSN", m.start(), m.end(), m.group(0))
    for m in _IPV4_RE.finditer(text):
        if all(int(o) <= 255 for o in m.group(0).split(".")):
            yield Span("IP", m.start(), m.end(), m.group(0))
    for m in _IPV6_RE.finditer(text):
        s = m.group(0)
        if sum(1 for g in s.split(":") if g) >= 3:
            try:
                ipaddress.IPv6Address(s)
            except ValueError:
                continue
            yield Span("IP", m.start(), m.end(), s)
    yield from _phone_spans(text)


def find_pii(text: str | None) -> list[Span]:
    """Non-overlapping PII and secret spans in text, in order; existing placeholders are skipped."""
    if not text:
        return []
    taken = [(m.start(), m.end()) for m in PLACEHOLDER_RE.finditer(text)]
    chosen: list[Span] = []
    # longest span first; on ties the higher-priority type
    for span in sorted(_candidates(text), key=lambda s: (-(s.end - s.start), _PRIORITY[s.type], s.start)):
        if any(span.start < e and s < span.end for s, e in taken):
            continue
        chosen.append(span)
        taken.append((span.start, span.end))
    return sorted(chosen, key=lambda s: s.start)


# ---------------------------------------------------------------------------- placeholders


def _normal(type_: str, value: str) -> str:
    """Key under which two spellings of one value share a placeholder."""
    if type_ in ("PHONE", "CARD", "SSN"):
        return re.sub(r"\D", "", value)
    if type_ == "EMAIL":
        return value.lower()
    return value


@dataclass
class PlaceholderState:
    """Value -> placeholder map and per-type counters for one conversation."""

    mapping: dict[str, str] = field(default_factory=dict)  # "TYPE:normalised value" -> "<TYPE_n>"
    counters: Counter[str] = field(default_factory=Counter)  # highest number used per type
    found: Counter[str] = field(default_factory=Counter)  # replacements made per type

    @classmethod
    def from_texts(cls, texts: Iterable[str | None]) -> PlaceholderState:
        """A state whose counters start above the placeholders already present in texts."""
        state = cls()
        for text in texts:
            for m in PLACEHOLDER_RE.finditer(text or ""):
                type_, n = m.group(1), int(m.group(2))
                state.counters[type_] = max(state.counters[type_], n)
        return state

    def placeholder(self, type_: str, value: str) -> str:
        key = f"{type_}:{_normal(type_, value)}"
        if key not in self.mapping:
            self.counters[type_] += 1
            self.mapping[key] = f"<{type_}_{self.counters[type_]}>"
        return self.mapping[key]


def redact_text(text: str | None, state: PlaceholderState) -> str | None:
    """Text with every detected value replaced by its placeholder (None stays None)."""
    if not text:
        return text
    out: list[str] = []
    pos = 0
    for span in find_pii(text):
        out.append(text[pos : span.start])
        out.append(state.placeholder(span.type, span.value))
        state.found[span.type] += 1
        pos = span.end
    out.append(text[pos:])
    return "".join(out)


# ---------------------------------------------------------------------------- conversations


def _secret() -> str:
    return os.environ.get("DEPLOYSIM_REDACT_SECRET") or DEFAULT_SECRET


def hash_user_id(user_id: Any) -> str:
    """Pseudonymous user id: sha256(secret + user_id), first 16 hex."""
    return hashlib.sha256((_secret() + str(user_id)).encode("utf-8")).hexdigest()[:16]


def _coarse_date(ts: Any) -> str | None:
    """The UTC date (YYYY-MM-DD) of an ISO 8601 string or epoch seconds, else None."""
    try:
        if isinstance(ts, (int, float)) and not isinstance(ts, bool):
            return datetime.fromtimestamp(ts, tz=timezone.utc).date().isoformat()
        if isinstance(ts, str):
            dt = datetime.fromisoformat(ts.strip().replace("Z", "+00:00"))
            if dt.tzinfo is not None:
                dt = dt.astimezone(timezone.utc)
            return dt.date().isoformat()
    except (ValueError, OverflowError, OSError):
        return None
    return None


def redact_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """Keep only the timestamp (as a date) and a hashed user_id."""
    out: dict[str, Any] = {}
    if (day := _coarse_date(meta.get("timestamp"))) is not None:
        out["timestamp"] = day
    if meta.get("user_id") not in (None, ""):
        out["user_id"] = hash_user_id(meta["user_id"])
    return out


def _texts(conv: Conversation) -> Iterable[str | None]:
    for m in conv.messages:
        yield m.content
        for c in m.tool_calls:
            yield c.arguments


def redact_conversation(conv: Conversation) -> tuple[Conversation, Counter[str]]:
    """A copy with contents, tool-call arguments and tool results redacted, and the
    number of values replaced per entity type."""
    state = PlaceholderState.from_texts(_texts(conv))
    messages = [
        Message(
            role=m.role,
            content=redact_text(m.content, state),
            tool_calls=[ToolCall(id=c.id, name=c.name, arguments=redact_text(c.arguments, state) or c.arguments) for c in m.tool_calls],
            tool_call_id=m.tool_call_id,
            name=m.name,
        )
        for m in conv.messages
    ]
    out = conv.model_copy(update={"messages": messages, "metadata": redact_metadata(conv.metadata)})
    return out, Counter(state.found)


def redact_conversations(convs: Iterable[Conversation]) -> tuple[list[Conversation], Counter[str]]:
    """Redact each conversation (numbering restarts per conversation); total counts per type."""
    total: Counter[str] = Counter()
    out: list[Conversation] = []
    for conv in convs:
        red, counts = redact_conversation(conv)
        out.append(red)
        total.update(counts)
    return out, total

