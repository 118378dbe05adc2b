"""Replace personal data and secrets with consistent pseudonyms such as <EMAIL_1>.

Detectors (``find_pii``):

- structured identifiers, validated rather than matched: payment cards (Luhn), IBANs
  (mod-97 and per-country length), phone numbers (Google's libphonenumber via
  ``phonenumbers``, international and national forms for DEPLOYSIM_PHONE_REGIONS), emails,
  US SSNs (number ranges), IPv4/IPv6 (parsed), MAC addresses;
- in context: dates of birth (after "born", "DOB", "date of birth", or a ``"dob"`` key), street
  addresses, URLs carrying credentials or tokens, secrets (known key prefixes, ``password=``
  style assignments, high-entropy strings), and values of personal JSON keys in tool
  results (``"first_name"``, ``"address1"``, ``"city"``, ``"dob"``, ...);
- names, locations and organisations with a spaCy NER model (deploysim.privacy.ner), when enabled.

Within one conversation the same value always gets the same placeholder (numbering per
type; a person's first or last name alone maps to the person's placeholder). Text already
holding placeholders is never re-redacted. Per entity type a policy chooses ``replace``
(<TYPE_n>), ``mask`` (stars, keeping the last 4 characters of numbers), ``hash`` (a keyed
pseudonym <TYPE_#0123456789>, equal across conversations for the same value, so the same user
links without being revealed) or ``drop`` (the whole conversation is left out).

Every text field of a record is covered (``conversation_fields``): message contents and tool-call
arguments, every string inside the tool schemas (keys and structure kept), topic, surface and
the metadata keys kept by DEPLOYSIM_METADATA_ALLOW. Ids and names (conversation id, tool-call ids,
tool names, a message's ``name``, JSON keys) holding personal data are replaced whole by a keyed
pseudonym ``redacted_<16 hex>`` (``hash_identifier``), equal wherever the same value occurs.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Iterable, Iterator, Mapping, NamedTuple, Sequence
from urllib.parse import parse_qsl, urlsplit

from deploysim.rules import PLACEHOLDER_RE
from deploysim.schemas import Conversation, Message, ToolCall

STRUCTURED_TYPES = ("EMAIL", "PHONE", "CARD", "IBAN", "SSN", "IP", "MAC", "URL_SECRET", "API_KEY", "SECRET",
                    "DATE_OF_BIRTH", "ADDRESS", "USER_ID")
NER_TYPES = ("PERSON", "LOCATION", "ORGANIZATION")
ENTITY_TYPES = STRUCTURED_TYPES + NER_TYPES
POLICIES = ("replace", "mask", "hash", "drop")

# On equal span length, the earlier type in this list wins.
_PRIORITY = {t: i for i, t in enumerate((
    "USER_ID", "URL_SECRET", "API_KEY", "EMAIL", "IBAN", "CARD", "SSN", "MAC", "IP", "DATE_OF_BIRTH", "PHONE",
    "SECRET", "ADDRESS", "PERSON", "LOCATION", "ORGANIZATION"))}
# Detector families: a span from a stronger family wins over any overlapping weaker one.
_FAMILY = {t: 0 for t in STRUCTURED_TYPES} | {"ADDRESS": 1, "PERSON": 2, "LOCATION": 2, "ORGANIZATION": 2}

DEFAULT_SECRET = "deploysim-default-redaction-secret"  # set DEPLOYSIM_REDACT_SECRET in production
PSEUDONYM_RE = re.compile(r"<[A-Z_]+_(?:\d+|#[0-9a-f]{10})>")  # <EMAIL_1> or a hashed <EMAIL_#0a1b2c3d4e>
DEFAULT_METADATA_ALLOW = ("omitted_parts", "control_chars_removed", "task_id", "trial", "reward")
GRANULARITIES = ("none", "second", "minute", "hour", "day", "week", "month")


@dataclass(frozen=True)
class Span:
    type: str
    start: int
    end: int
    value: str


class RedactConfigError(ValueError):
    """A redaction setting that cannot be used."""


def _env_list(name: str, default: Sequence[str]) -> tuple[str, ...]:
    raw = os.environ.get(name)
    if raw is None:
        return tuple(default)
    return tuple(x.strip() for x in raw.split(",") if x.strip())


@dataclass(frozen=True)
class RedactConfig:
    """How to redact. ``RedactConfig.from_env()`` reads the DEPLOYSIM_* variables:

    DEPLOYSIM_REDACT_NER (0/1, default 1: names, locations and organisations with spaCy; a bare
    RedactConfig() runs the deterministic detectors only),
    DEPLOYSIM_NER_MODEL, DEPLOYSIM_REDACT_POLICY
    ("SSN=drop,EMAIL=hash"; default replace), DEPLOYSIM_REDACT_SECRET, DEPLOYSIM_TIME_GRANULARITY
    (default day), DEPLOYSIM_METADATA_ALLOW (extra metadata keys kept, redacted),
    DEPLOYSIM_PHONE_REGIONS (default US,GB,DE,FR,IN,CA,AU).
    """

    ner: bool = False
    ner_model: str | None = None
    policies: tuple[tuple[str, str], ...] = ()
    secret: str = DEFAULT_SECRET
    time_granularity: str = "day"
    metadata_allow: tuple[str, ...] = DEFAULT_METADATA_ALLOW

    def __post_init__(self) -> None:
        for t, pol in self.policies:
            if pol not in POLICIES:
                raise RedactConfigError(f"unknown redaction policy {pol!r} for {t}; choose one of {', '.join(POLICIES)}")
            if t not in ENTITY_TYPES:
                raise RedactConfigError(f"unknown entity type {t!r}; choose among {', '.join(ENTITY_TYPES)}")
        if self.time_granularity not in GRANULARITIES:
            raise RedactConfigError(f"unknown time granularity {self.time_granularity!r}; choose one of {', '.join(GRANULARITIES)}")

    def policy(self, type_: str) -> str:
        # a user id in text defaults to its keyed pseudonym, so it links to the hashed metadata user_id
        return dict(self.policies).get(type_, "hash" if type_ == "USER_ID" else "replace")

    @classmethod
    def from_env(cls, **overrides: Any) -> RedactConfig:
        pols = []
        for item in _env_list("DEPLOYSIM_REDACT_POLICY", ()):
            if "=" not in item:
                raise RedactConfigError(f"DEPLOYSIM_REDACT_POLICY item {item!r} is not TYPE=policy")
            t, pol = item.split("=", 1)
            pols.append((t.strip().upper(), pol.strip().lower()))
        kw: dict[str, Any] = dict(
            ner=os.environ.get("DEPLOYSIM_REDACT_NER", "1").strip().lower() in ("1", "true", "yes", "on"),
            ner_model=os.environ.get("DEPLOYSIM_NER_MODEL") or None,
            policies=tuple(pols),
            secret=os.environ.get("DEPLOYSIM_REDACT_SECRET") or DEFAULT_SECRET,
            time_granularity=os.environ.get("DEPLOYSIM_TIME_GRANULARITY", "day").strip().lower(),
            metadata_allow=DEFAULT_METADATA_ALLOW + _env_list("DEPLOYSIM_METADATA_ALLOW", ()),
        )
        kw.update(overrides)
        return cls(**kw)


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


_API_KEY_HINT_RE = re.compile(r"sk-|gh[pousr]_|github_pat_|AKIA|ASIA|xox[abposr]-|AIza|glpat-|eyJ|[Bb][Ee][Aa][Rr][Ee][Rr]")
_DIGIT_RE = re.compile(r"\d")


def _api_key_spans(text: str) -> Iterable[Span]:
    if not _API_KEY_HINT_RE.search(text):  # one scan instead of nine when no key prefix occurs
        return
    for rx in _API_KEY_RES:
        for m in rx.finditer(text):
            if m.re is _API_KEY_RES[0] and _WORDY_RE.fullmatch(m.group(1)):
                continue
            yield Span("API_KEY", m.start(), m.end(), m.group(0))
    for m in _BEARER_RE.finditer(text):
        tok = m.group(1)
        if any(c.isdigit() for c in tok) or len(tok) >= 24:
            yield Span("API_KEY", m.start(1), m.end(1), tok)



# ---------------------------------------------------------------------------- validated identifiers

_DIGITISH_RE = re.compile(r"\d[\d\s().\-/]{5,}\d")
_ID_BEFORE_RE = re.compile(r"[A-Za-z][\w]*[-_#:/.]?$")  # digits glued to an id (ORD-48213, v10)


def phone_regions() -> tuple[str, ...]:
    return tuple(r.upper() for r in _env_list("DEPLOYSIM_PHONE_REGIONS", ("US", "GB", "DE", "FR", "IN", "CA", "AU")))


@lru_cache(maxsize=1)
def _pn():
    import phonenumbers

    return phonenumbers


def _pn_ok(s: str) -> bool:
    """libphonenumber accepts s: a possible number for the first region (or in international
    form), a valid number for the other regions."""
    pn = _pn()
    main = _EXT_RE.sub("", s)
    digits = re.sub(r"\D", "", main)
    groups = [g for g in re.split(r"[^\d]+", main) if g]
    intl = main.startswith(("+", "00"))
    if not intl and (len(digits) < 10 and (len(groups) < 2 or min(len(g) for g in groups) < 2)):
        return False  # bare short digit runs ("6000000") and single-digit chains ("3-5-6-5")
    for k, region in enumerate(phone_regions()):
        try:
            num = pn.parse(main, region)
        except pn.NumberParseException:
            continue
        if pn.is_valid_number(num) or ((k == 0 or intl) and pn.is_possible_number(num)):
            return True
        if intl:
            break  # the country code decides the region
    return False


def _phonenumbers_spans(text: str) -> Iterable[Span]:
    """Phone-shaped digit groups validated by Google's libphonenumber (``phonenumbers``), or by
    the shape rules of _phone_ok for national forms of regions not configured."""
    for m in _PHONE_RE.finditer(text):
        s = m.group(0)
        while s:  # the regex is greedy: shorten from the right until the number validates
            if _phone_ok_shape(s) and (_pn_ok(s) or _phone_ok(s)):
                yield Span("PHONE", m.start(), m.start() + len(s), s)
                break
            cut = max(s.rfind(" "), s.rfind("-"), s.rfind("."))
            if cut <= 0:
                break
            s = s[:cut]


def _phone_ok_shape(s: str) -> bool:
    main = _EXT_RE.sub("", s)
    digits = re.sub(r"\D", "", main)
    if not 7 <= len(digits) <= 15:
        return False
    if re.fullmatch(r"\d{3}-\d{2}-\d{4}", main):  # SSN shape
        return False
    if re.search(r"\b(?:1[89]|20)\d{2}-[01]\d-[0-3]\d\b|\b[0-3]?\d[-/.][01]?\d[-/.](?:1[89]|20)\d{2}\b", main):
        return False
    if re.fullmatch(r"\d{1,2}:\d{2}(?::\d{2})?", main):
        return False
    return True


_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "BY": 28,
    "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19,
    "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}
_IBAN_RE = re.compile(r"(?<![A-Za-z0-9])([A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30})(?![A-Za-z0-9])")


def iban_ok(iban: str) -> bool:
    """ISO 13616: country length and mod-97 == 1."""
    s = iban.replace(" ", "").upper()
    if _IBAN_LENGTHS.get(s[:2]) != len(s) or not s.isalnum():
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _iban_spans(text: str) -> Iterable[Span]:
    for m in _IBAN_RE.finditer(text):
        cand = m.group(1)
        want = _IBAN_LENGTHS.get(cand[:2])
        if not want:
            continue
        # take exactly the country's length of characters (spaces allowed between)
        n, end = 0, 0
        for end, ch in enumerate(cand, start=1):
            n += ch != " "
            if n == want:
                break
        value = cand[:end]
        if n == want and iban_ok(value):
            yield Span("IBAN", m.start(1), m.start(1) + len(value), value)


_MAC_RE = re.compile(
    r"(?<![\w:.-])(?:[0-9A-Fa-f]{2}([:-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4})(?![\w:-]|\.\w)"
)


def _mac_spans(text: str) -> Iterable[Span]:
    for m in _MAC_RE.finditer(text):
        hexes = re.sub(r"[^0-9A-Fa-f]", "", m.group(0))
        if len(set(hexes.lower())) > 1 and re.search(r"[A-Fa-f]", m.group(0)) or hexes.isdigit() is False or ":" in m.group(0):
            if len(set(hexes)) > 1:
                yield Span("MAC", m.start(), m.end(), m.group(0))


# ---------------------------------------------------------------------------- values in context

_MONTHS = r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
_DATE_RE = re.compile(
    r"(?:(?:19|20)\d{2}[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])"
    r"|(?:0?[1-9]|[12]\d|3[01])[-/.](?:0?[1-9]|[12]\d|3[01])[-/.](?:19|20)?\d{2}"
    rf"|{_MONTHS}\.? (?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?,? (?:19|20)\d{{2}}"
    rf"|(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)? (?:of )?{_MONTHS}\.?,? (?:19|20)\d{{2}})(?!\d)",
    re.IGNORECASE,
)
_DOB_CONTEXT_RE = re.compile(
    r"(?:\b(?:born|birth ?date|birthday|date of birth|d\.?o\.?b\.?|dob|b-day)\b|\"(?:dob|birthdate|birth_date|date_of_birth|birthday)\\?\")",
    re.IGNORECASE,
)


def _dob_spans(text: str) -> Iterable[Span]:
    for c in _DOB_CONTEXT_RE.finditer(text):
        window = text[c.end() : c.end() + 40]
        m = _DATE_RE.search(window)
        if m:
            yield Span("DATE_OF_BIRTH", c.end() + m.start(), c.end() + m.end(), m.group(0))


_STREET = (r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Ter|"
           r"Circle|Cir|Highway|Hwy|Parkway|Pkwy|Square|Sq|Trail|Trl|Crescent|Close|Alley|Row|Walk)")
_ADDR_STOP = r"(?!(?:the|a|an|on|in|at|to|of|for|and|or|my|your|our|their|by|with|from|is|are|was|it|this|that|down|up)\b)"
_ADDRESS_RE = re.compile(
    rf"(?<![\w-])\d{{1,6}}[A-Za-z]?(?:[ ,]+{_ADDR_STOP}[A-Za-z][A-Za-z'.-]*){{1,4}} {_STREET}\b\.?"
    r"(?:,? (?:Apt|Apartment|Suite|Ste|Unit|Floor|Fl|#)\.? ?#?[\w-]{1,6})?"
    r"(?:,? [A-Z][a-zA-Z]+(?: [A-Z][a-zA-Z]+){0,2},? [A-Z]{2} \d{5}(?:-\d{4})?)?",
    re.IGNORECASE,
)

_PERSONAL_KEYS = {
    "PERSON": ("first_name", "last_name", "full_name", "name", "customer_name", "passenger_name", "given_name",
               "family_name", "surname", "firstname", "lastname", "fullname", "middle_name", "contact_name"),
    "ADDRESS": ("address", "address1", "address2", "address_line1", "address_line2", "street", "street_address",
                "zip", "zipcode", "zip_code", "postal_code", "postcode"),
    "LOCATION": ("city", "town"),
    "DATE_OF_BIRTH": ("dob", "birthdate", "birth_date", "date_of_birth", "birthday"),
}
_KEY_TYPE = {k: t for t, keys in _PERSONAL_KEYS.items() for k in keys}
_KEY_RE = re.compile(r"\\?[\"'](" + "|".join(sorted(_KEY_TYPE, key=len, reverse=True)) + r")\\?[\"']\s*:\s*\\?[\"']([^\"'\\<>]{1,120})\\?[\"']", re.IGNORECASE)
_NAME_VALUE_RE = re.compile(r"[A-Z][a-zA-Z'.-]*(?: [A-Z][a-zA-Z'.-]*){0,3}")


def _key_spans(text: str) -> Iterable[Span]:
    """Values of personal keys in JSON-like text (tool results): "first_name": "Mia"."""
    if '"' not in text and "'" not in text:
        return
    for m in _KEY_RE.finditer(text):
        type_ = _KEY_TYPE[m.group(1).lower()]
        value = m.group(2).strip()
        if not value or PSEUDONYM_RE.fullmatch(value):
            continue
        if m.group(1).lower() == "name" and not _NAME_VALUE_RE.fullmatch(value):
            continue  # "name": "get_order_status" is not a person
        if type_ == "PERSON" and not re.search(r"[A-Za-z]", value):
            continue
        start = m.start(2) + m.group(2).index(value)
        yield Span(type_, start, start + len(value), value)


_SECRET_ASSIGN_RE = re.compile(
    r"\b(?:password|passwd|pwd|passphrase|secret|client[_-]?secret|api[_-]?key|access[_-]?key|secret[_-]?key|"
    r"auth[_-]?token|access[_-]?token|refresh[_-]?token|private[_-]?key)\\?[\"']?\s*[:=]\s*\\?[\"']?([^\s\"'`,;<>\\]{6,})",
    re.IGNORECASE,
)
_TOKEN_RE = re.compile(r"(?<![\w+/=.-])[A-Za-z0-9+/_-]{24,}={0,2}(?![\w+/=-])")
_ID_PREFIXES = ("call_", "toolu_", "chatcmpl-", "msg_", "resp_", "run_", "thread_", "asst_", "file-", "req_",
                "cmpl-", "batch_", "ftjob-", "evt_", "sess_")


def _entropy(s: str) -> float:
    counts = Counter(s)
    return -sum(c / len(s) * math.log2(c / len(s)) for c in counts.values())


def _secret_spans(text: str) -> Iterable[Span]:
    for m in _SECRET_ASSIGN_RE.finditer(text):
        val = m.group(1)
        if not PSEUDONYM_RE.search(val) and not val.lower() in ("none", "null", "true", "false", "required", "string"):
            yield Span("SECRET", m.start(1), m.end(1), val)
    for m in _TOKEN_RE.finditer(text):
        tok = m.group(0)
        if tok.startswith(_ID_PREFIXES) or _WORDY_RE.fullmatch(tok.lower()):
            continue
        if "/" in tok and any(len(seg) >= 3 and seg.isalpha() for seg in re.split(r"[/_-]", tok)):
            continue  # a path ("article/pii/S0960982206..."), not a key
        if not (re.search(r"[a-z]", tok) and re.search(r"[A-Z]", tok) and re.search(r"\d", tok)):
            continue
        if _entropy(tok) >= 4.0 and sum(c.isdigit() for c in tok) >= 2:
            yield Span("SECRET", m.start(), m.end(), tok)



# ---------------------------------------------------------------------------- finding spans


def _structured(text: str) -> Iterable[Span]:
    for m in _URL_RE.finditer(text):
        url = _trim_url(m.group(0))
        if url and _url_has_secret(url):
            yield Span("URL_SECRET", m.start(), m.start() + len(url), url)
    yield from _api_key_spans(text)
    if "@" in text:
        for m in _EMAIL_RE.finditer(text):
            yield Span("EMAIL", m.start(), m.end(), m.group(0))
    if _DIGIT_RE.search(text):
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
        yield from _iban_spans(text)
        yield from _dob_spans(text)
        yield from _address_spans(text)
        if _DIGITISH_RE.search(text):
            yield from _phonenumbers_spans(text)
    if ":" in text:
        for m in _IPV6_RE.finditer(text):
            s = m.group(0)
            if sum(1 for g in s.split(":") if g) >= 3:
                try:
                    ipaddress.IPv6Address(s)
                except ValueError:
                    continue
                yield Span("IP", m.start(), m.end(), s)
    yield from _mac_spans(text)
    yield from _secret_spans(text)
    yield from _key_spans(text)


def user_id_spans(text: str, user_id: str) -> list[Span]:
    """Occurrences of the record's own user id in text ("mia_li_3668"), as a whole token, any case."""
    if not text or user_id.lower() not in text.lower():
        return []
    rx = re.compile(r"(?<![\w-])" + re.escape(user_id) + r"(?![\w-])", re.IGNORECASE)
    return [Span("USER_ID", m.start(), m.end(), user_id) for m in rx.finditer(text)]


def _address_spans(text: str) -> Iterable[Span]:
    for m in _ADDRESS_RE.finditer(text):
        yield Span("ADDRESS", m.start(), m.end(), m.group(0).rstrip(".,"))


def _resolve(text: str, candidates: Iterable[Span]) -> list[Span]:
    """Non-overlapping spans: existing pseudonyms are kept, then stronger detector families,
    longer spans and higher-priority types win."""
    taken = [(m.start(), m.end()) for m in PSEUDONYM_RE.finditer(text)]
    chosen: list[Span] = []
    order = sorted(set(candidates), key=lambda s: (_FAMILY[s.type], -(s.end - s.start), _PRIORITY[s.type], s.start))
    for span in order:
        if span.end <= span.start or any(span.start < e and s < span.end for s, e in taken):
            continue
        chosen.append(span)
        taken.append((span.start, span.end))
    return sorted(chosen, key=lambda s: s.start)


def find_pii(text: str | None, *, ner: bool = False, ner_model: str | None = None) -> list[Span]:
    """Non-overlapping PII and secret spans in text, in order; existing placeholders are skipped.

    By default only the deterministic detectors run (what the residual-PII checks use);
    ``ner=True`` adds people, locations and organisations from the spaCy model."""
    if not text:
        return []
    cands = list(_structured(text))
    if ner:
        from deploysim.privacy import ner as ner_mod

        cands += [Span(*e) for e in ner_mod.entities([text], ner_model)[0]]
    return _resolve(text, cands)


# ---------------------------------------------------------------------------- residual-PII scans


def strings_in(value: Any, _depth: int = 0) -> Iterator[str]:
    """Every string inside a value, for residual-PII scans of metadata: strings themselves, dict keys
    and values, list/tuple/set items, and the payload of objects that carry one in ``.value`` (as
    Dagster's MetadataValue does: JSON, Markdown, text, path, table...); anything else as ``str()``."""
    if _depth > 20 or value is None or isinstance(value, (bool, int, float)):
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, bytes):
        yield value.decode("utf-8", "replace")
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings_in(k, _depth + 1)
            yield from strings_in(v, _depth + 1)
    elif hasattr(value, "value") and getattr(value, "value") is not value:
        yield from strings_in(getattr(value, "value"), _depth + 1)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for v in value:
            yield from strings_in(v, _depth + 1)
    elif hasattr(value, "__dict__") and vars(value):
        yield from strings_in(vars(value), _depth + 1)
    else:
        yield str(value)


def scan_texts(sources: Mapping[str, Any]) -> dict[str, Any]:
    """Residual-PII scan of arbitrary values by source name (e.g. ``{"metadata:report": {...}}``):
    the deterministic detectors only (no NER, so redacted text gives no false alarms) over every
    string inside each value (``strings_in``). Returns counts and places only, never the values:
    ``{"hits": n, "by_type": {type: n}, "by_file": {source: n}}``."""
    by_type: Counter[str] = Counter()
    by_source: Counter[str] = Counter()
    for source, value in sources.items():
        for text in strings_in(value):
            for span in find_pii(text):
                by_type[span.type] += 1
                by_source[source] += 1
    return {"hits": sum(by_type.values()), "by_type": dict(by_type), "by_file": dict(by_source)}


# ---------------------------------------------------------------------------- placeholders


def _normal(type_: str, value: str) -> str:
    """Key under which two spellings of one value share a placeholder."""
    if type_ in ("PHONE", "CARD", "SSN", "IBAN"):
        return re.sub(r"[^0-9A-Za-z]", "", value).upper()
    if type_ in ("EMAIL", "MAC"):
        return re.sub(r"[^0-9a-z@._+-]", "", value.lower())
    if type_ in NER_TYPES or type_ in ("ADDRESS", "DATE_OF_BIRTH"):
        return " ".join(value.split()).lower()
    return value


def _mask(type_: str, value: str) -> str:
    if type_ in ("CARD", "PHONE", "IBAN", "SSN"):
        keep = 4
        out, seen = [], 0
        for ch in reversed(value):
            if ch.isalnum():
                seen += 1
                out.append(ch if seen <= keep else "*")
            else:
                out.append(ch)
        return "".join(reversed(out))
    return "*" * min(max(len(value), 3), 12)


@dataclass
class PlaceholderState:
    """Value -> placeholder map and per-type counters for one conversation."""

    mapping: dict[str, str] = field(default_factory=dict)  # "TYPE:normalised value" -> "<TYPE_n>"
    counters: Counter[str] = field(default_factory=Counter)  # highest number used per type
    found: Counter[str] = field(default_factory=Counter)  # replacements made per type
    config: RedactConfig | None = None
    known: dict[str, str] = field(default_factory=dict)  # name-like value -> type, matched again verbatim

    @classmethod
    def from_texts(cls, texts: Iterable[str | None], config: RedactConfig | None = None) -> PlaceholderState:
        """A state whose counters start above the placeholders already present in texts."""
        state = cls(config=config)
        for text in texts:
            for m in PLACEHOLDER_RE.finditer(text or ""):
                type_, n = m.group(1), int(m.group(2))
                state.counters[type_] = max(state.counters[type_], n)
        return state

    def placeholder(self, type_: str, value: str) -> str:
        key = f"{type_}:{_normal(type_, value)}"
        if key not in self.mapping:
            policy = self.config.policy(type_) if self.config else "replace"
            if policy == "hash" and type_ == "USER_ID":
                # the first 10 hex digits of the metadata user_id pseudonym (hash_user_id): links text to metadata
                self.mapping[key] = f"<USER_ID_#{hash_user_id(value, self.config)[:10]}>"
            elif policy == "hash":
                secret = (self.config.secret if self.config else DEFAULT_SECRET).encode()
                digest = hmac.new(secret, key.encode("utf-8"), hashlib.sha256).hexdigest()[:10]
                self.mapping[key] = f"<{type_}_#{digest}>"
            elif policy == "mask":
                self.mapping[key] = _mask(type_, value)
            else:
                self.counters[type_] += 1
                self.mapping[key] = f"<{type_}_{self.counters[type_]}>"
        return self.mapping[key]

    def remember(self, span: Span) -> None:
        """Name-like values found once are replaced wherever else they occur verbatim; a
        person's first or last name alone gets the person's placeholder."""
        if span.type not in NER_TYPES and span.type != "ADDRESS":
            return
        self.known.setdefault(span.value, span.type)
        if span.type == "PERSON":
            parts = span.value.split()
            if len(parts) > 1:
                ph = self.placeholder("PERSON", span.value)
                for p in parts:
                    if len(p) >= 3 and p[0].isupper():
                        self.mapping.setdefault(f"PERSON:{_normal('PERSON', p)}", ph)
                        self.known.setdefault(p, "PERSON")

    def known_spans(self, text: str) -> list[Span]:
        if not self.known:
            return []
        out = []
        for value, type_ in self.known.items():
            if value not in text:  # most texts hold none of the names: skip the regex
                continue
            for m in re.finditer(r"(?<!\w)" + re.escape(value) + r"(?!\w)", text):
                out.append(Span(type_, m.start(), m.end(), value))
        return out


def _apply(text: str, spans: list[Span], state: PlaceholderState) -> str:
    out: list[str] = []
    pos = 0
    for span in spans:
        out.append(text[pos : span.start])
        out.append(state.placeholder(span.type, span.value))
        state.found[span.type] += 1
        pos = span.end
    out.append(text[pos:])
    return "".join(out)


def redact_text(text: str | None, state: PlaceholderState) -> str | None:
    """Text with every detected value (and every name the state already knows) replaced by its
    placeholder (None stays None). Deterministic detectors only: NER runs per conversation."""
    if not text:
        return text
    spans = _resolve(text, list(_structured(text)) + state.known_spans(text))
    return _apply(text, spans, state)


# ---------------------------------------------------------------------------- metadata


def _secret(config: RedactConfig | None = None) -> str:
    if config is not None and config.secret != DEFAULT_SECRET:
        return config.secret
    return os.environ.get("DEPLOYSIM_REDACT_SECRET") or DEFAULT_SECRET


def hash_user_id(user_id: Any, config: RedactConfig | None = None) -> str:
    """Pseudonymous user id: HMAC-SHA256 keyed with the redaction secret, first 16 hex."""
    return hmac.new(_secret(config).encode("utf-8"), str(user_id).encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def coarsen_time(ts: Any, granularity: str = "day") -> str | None:
    """An ISO 8601 string or epoch seconds, in UTC, truncated to the granularity; else None."""
    try:
        if isinstance(ts, (int, float)) and not isinstance(ts, bool):
            dt = datetime.fromtimestamp(ts, tz=timezone.utc)
        elif isinstance(ts, str):
            dt = datetime.fromisoformat(ts.strip().replace("Z", "+00:00"))
            if dt.tzinfo is not None:
                dt = dt.astimezone(timezone.utc)
        else:
            return None
    except (ValueError, OverflowError, OSError):
        return None
    if granularity == "none":
        return None
    if granularity == "month":
        return dt.strftime("%Y-%m")
    if granularity == "week":
        return (dt.date() - timedelta(days=dt.weekday())).isoformat()
    if granularity == "day":
        return dt.date().isoformat()
    fmt = {"hour": "%Y-%m-%dT%H:00", "minute": "%Y-%m-%dT%H:%M", "second": "%Y-%m-%dT%H:%M:%S"}[granularity]
    return dt.strftime(fmt)


def _coarse_date(ts: Any) -> str | None:  # kept for callers of the first version
    return coarsen_time(ts, "day")


def redact_metadata(meta: dict[str, Any], config: RedactConfig | None = None) -> dict[str, Any]:
    """Timestamp coarsened, user_id hashed with the secret, allowed keys kept (text redacted),
    everything else dropped."""
    config = config or RedactConfig.from_env()
    out: dict[str, Any] = {}
    if (when := coarsen_time(meta.get("timestamp"), config.time_granularity)) is not None:
        out["timestamp"] = when
    if meta.get("user_id") not in (None, ""):
        out["user_id"] = hash_user_id(meta["user_id"], config)
    state = PlaceholderState(config=config)
    for key in config.metadata_allow:
        if key in ("timestamp", "user_id") or key not in meta:
            continue
        val = meta[key]
        if isinstance(val, (bool, int, float)) or val is None:
            out[key] = val
        elif isinstance(val, str):
            out[key] = redact_text(val, state)
        elif isinstance(val, (dict, list)):
            out[key] = json.loads(redact_text(json.dumps(val, ensure_ascii=False), state) or "null")
    return out


# ---------------------------------------------------------------------------- fields of a record

FIELD_PREFIX = "field:"  # counter keys "field:<label>": conversations in which that field outside the text changed
ID_PSEUDONYM_RE = re.compile(r"redacted_[0-9a-f]{16}")
_TOOL_NAME_PATH_RE = re.compile(r"tools\[\d+\](?:\.function)?\.name")
_VALUE_KEYS = ("default", "enum", "examples", "example", "const")  # a schema value: its property names it


def hash_identifier(value: str, config: RedactConfig | None = None) -> str:
    """Keyed pseudonym of an id or name holding personal data: ``redacted_<16 hex>``, stable across
    runs for the same value and secret, and valid as a tool name or tool-call id."""
    digest = hmac.new(_secret(config).encode("utf-8"), f"id:{value}".encode("utf-8"), hashlib.sha256).hexdigest()
    return f"redacted_{digest[:16]}"


class Field(NamedTuple):
    """One text field of a conversation. ``kind`` "text": values replaced in place by placeholders;
    "id": the whole value replaced by hash_identifier when it holds personal data (ids, tool names,
    JSON keys). ``label`` names the field in counts (None for message contents and call arguments)."""

    path: str  # "messages[2].content", "tools[0].function.description", "topic"
    kind: str = "text"
    ner: bool | None = None  # None: when the text reads like prose with a capital (_ner_worthy)
    label: str | None = None
    key: str | None = None  # the JSON key that names the value ("first_name"), for personal-key context


def _ner_worthy(text: str) -> bool:
    return any(c.isspace() for c in text) and any(c.isupper() for c in text)


def _map_json(value: Any, path: str, label: str, fn, key: str | None = None) -> Any:
    """A JSON value with fn(Field, text) applied to every string and dict key, in a fixed order."""
    if isinstance(value, str):
        kind = "id" if _TOOL_NAME_PATH_RE.fullmatch(path) else "text"
        return fn(Field(path, kind, None if kind == "text" else False, label, key), value)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            new_key = fn(Field(f"{path}.<key>", "id", False, label), k) if isinstance(k, str) else k
            out[new_key] = _map_json(v, f"{path}.{k}", label, fn, key if k in _VALUE_KEYS else k)
        return out
    if isinstance(value, list):
        return [_map_json(v, f"{path}[{i}]", label, fn, key) for i, v in enumerate(value)]
    return value


def _map_fields(conv: Conversation, allow: Sequence[str], fn, tools: list | None = None,
                build: bool = True) -> dict[str, Any]:
    """fn(Field, text) applied to every text field of conv, always in the same order (a first call
    collects the texts, a second one puts the redacted texts back). Returns the fields for
    model_copy, plus "metadata_extra": the allowed metadata keys holding text. ``tools`` given:
    used as they are, fn is not applied to them; ``build`` False: no messages are built (collecting)."""
    messages = []
    for i, m in enumerate(conv.messages):
        p = f"messages[{i}]"
        content = fn(Field(f"{p}.content", ner=True), m.content)
        calls = []
        for j, c in enumerate(m.tool_calls):
            q = f"{p}.tool_calls[{j}]"
            args = fn(Field(f"{q}.arguments", ner=True), c.arguments)
            cid = fn(Field(f"{q}.id", "id", False, "tool_calls.id"), c.id)
            name = fn(Field(f"{q}.name", "id", False, "tool_calls.name"), c.name)
            if build:
                calls.append(ToolCall(id=cid, name=name, arguments=args or c.arguments))
        tool_call_id = fn(Field(f"{p}.tool_call_id", "id", False, "messages.tool_call_id"), m.tool_call_id)
        name = fn(Field(f"{p}.name", "id", False, "messages.name"), m.name)
        if build:
            messages.append(Message(role=m.role, content=content, tool_calls=calls, tool_call_id=tool_call_id, name=name))
    if tools is None:
        tools = [_map_json(t, f"tools[{k}]", "tools", fn) for k, t in enumerate(conv.tools)]
    extra = {}
    for key in allow:
        val = conv.metadata.get(key)
        if key not in ("timestamp", "user_id") and isinstance(val, (str, dict, list)):
            extra[key] = _map_json(val, f"metadata.{key}", f"metadata.{key}", fn, key)
    return {
        "conversation_id": fn(Field("conversation_id", "id", False, "conversation_id"), conv.conversation_id),
        "topic": fn(Field("topic", label="topic"), conv.topic),
        "surface": fn(Field("surface", label="surface"), conv.surface),
        "messages": messages,
        "tools": tools,
        "metadata_extra": extra,
    }


def conversation_fields(conv: Conversation, allow: Sequence[str] = DEFAULT_METADATA_ALLOW) -> list[tuple[Field, str | None]]:
    """Every text field of a conversation with its text, in redaction order."""
    out: list[tuple[Field, str | None]] = []

    def collect(f: Field, text: Any) -> Any:
        out.append((f, text if isinstance(text, str) else None))
        return text

    _map_fields(conv, allow, collect, build=False)
    return out


def _key_context_spans(key: str | None, text: str) -> list[Span]:
    """The value of a personal JSON key ("first_name": "Mia") found as a string of its own."""
    if not key or key.lower() not in _KEY_TYPE:
        return []
    out = []
    for s in _key_spans(json.dumps({key: text}, ensure_ascii=False)):
        i = text.find(s.value)
        if i >= 0:
            out.append(Span(s.type, i, i + len(s.value), s.value))
    return out


_REPEATING = ("tools", "topic", "surface", "tool_calls.name", "messages.name")  # labels of texts that repeat


@lru_cache(maxsize=20000)
def _resolved_cached(text: str) -> tuple[Span, ...]:
    """_resolve(text, _structured(text)), kept for texts that repeat across conversations (tool schemas)."""
    return tuple(_resolve(text, _structured(text)))


class Redactor:
    """Redacts conversations with one configuration; NER runs batched over many conversations."""

    def __init__(self, config: RedactConfig | None = None) -> None:
        self.config = config or RedactConfig.from_env()
        if self.config.ner:
            from deploysim.privacy import ner

            ner.load(self.config.ner_model)  # fail early, with install advice, if the model is missing

    def spans(self, texts: Sequence[str | None], ner_on: Sequence[bool] | None = None,
              cached: Sequence[bool] | None = None) -> list[list[Span]]:
        """For each text, its non-overlapping spans (deterministic detectors, then NER when on,
        batched over all the texts; ``ner_on`` limits NER to some texts, ``cached`` marks texts that
        repeat across conversations, such as tool schemas)."""
        out: list[list[Span]] = []
        for i, t in enumerate(texts):
            if not t:
                out.append([])
            elif cached and cached[i]:
                out.append(list(_resolved_cached(t)))
            else:
                out.append(_resolve(t, _structured(t)))
        if self.config.ner:
            from deploysim.privacy import ner

            # each distinct text once: tool schemas and system prompts repeat across conversations
            index: dict[str, int] = {}
            for i, t in enumerate(texts):
                if t and (ner_on is None or ner_on[i]):
                    index.setdefault(t, len(index))
            found = ner.entities(list(index), self.config.ner_model)
            for i, t in enumerate(texts):
                if t and t in index and (ents := found[index[t]]):
                    out[i] = _resolve(t, out[i] + [Span(*e) for e in ents])
        return out

    def redact_many(self, convs: Sequence[Conversation]) -> list[tuple[Conversation | None, Counter[str]]]:
        """Each conversation redacted (None when a ``drop`` policy applies) with its counts: values
        replaced per entity type, and "field:<label>" for fields outside the message text that changed."""
        fields_per = [conversation_fields(c, self.config.metadata_allow) for c in convs]
        flat = [ft for fs in fields_per for ft in fs]
        texts = [t for _, t in flat]
        ner_on = [f.kind == "text" and bool(t) and (f.ner if f.ner is not None else _ner_worthy(t)) for f, t in flat]
        cached = [f.label in _REPEATING for f, _ in flat]
        spans_flat = self.spans(texts, ner_on, cached)
        out: list[tuple[Conversation | None, Counter[str]]] = []
        k = 0
        for conv, fields in zip(convs, fields_per):
            spans = spans_flat[k : k + len(fields)]
            k += len(fields)
            out.append(self._one(conv, fields, spans))
        return out

    def _one(self, conv: Conversation, fields: list[tuple[Field, str | None]],
             spans: list[list[Span]]) -> tuple[Conversation | None, Counter[str]]:
        texts = [t for _, t in fields]
        state = PlaceholderState.from_texts(texts, self.config)
        uid = conv.metadata.get("user_id")
        uid = str(uid) if isinstance(uid, (str, int)) and not isinstance(uid, bool) and len(str(uid)) >= 3 else None
        for i, ((f, t), ss) in enumerate(zip(fields, spans)):
            if not t:
                continue
            extra = (_key_context_spans(f.key, t) if f.key else []) + (user_id_spans(t, uid) if uid else [])
            if extra:
                spans[i] = _resolve(t, ss + extra)
        drop = [t for t, pol in self.config.policies if pol == "drop"]
        found_types = {s.type for ss in spans for s in ss}
        if drop and found_types & set(drop):
            counts = Counter(s.type for ss in spans for s in ss)
            counts["conversations_dropped"] = 1
            return None, counts
        for ss in spans:
            for s in ss:
                state.remember(s)
        # second pass: names found anywhere in the conversation are replaced everywhere
        if state.known:
            for i, t in enumerate(texts):
                if t and (known := state.known_spans(t)):
                    spans[i] = _resolve(t, spans[i] + known)
        new: list[Any] = []
        changed: Counter[str] = Counter()
        for (f, t), ss in zip(fields, spans):
            if not t or not ss:
                new.append(t)
                continue
            if f.kind == "id":
                state.found.update(s.type for s in ss)
                value = hash_identifier(t, self.config)
            else:
                value = _apply(t, ss, state)
            new.append(value)
            if f.label and value != t:
                changed[FIELD_PREFIX + f.label] = 1
        if "field:tools" in changed:
            it = iter(new)
            update = _map_fields(conv, self.config.metadata_allow, lambda f, text: next(it))
        else:  # the tools are kept as they are (most often: they repeat across conversations)
            it = iter([v for (f, _), v in zip(fields, new) if f.label != "tools"])
            update = _map_fields(conv, self.config.metadata_allow, lambda f, text: next(it), conv.tools)
        extra = update.pop("metadata_extra")
        meta = redact_metadata({k: v for k, v in conv.metadata.items() if k not in extra}, self.config) | extra
        counts = Counter(state.found) + changed
        return conv.model_copy(update=update | {"metadata": meta}), counts


def split_counts(counts: Mapping[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """(values replaced per entity type, conversations changed per field outside the message text)."""
    types = {k: n for k, n in counts.items() if not k.startswith(FIELD_PREFIX)}
    fields = {k[len(FIELD_PREFIX):]: n for k, n in counts.items() if k.startswith(FIELD_PREFIX)}
    return types, fields


# ---------------------------------------------------------------------------- conversations


def redact_conversation(conv: Conversation, config: RedactConfig | None = None) -> tuple[Conversation | None, Counter[str]]:
    """A copy with every text field redacted (contents, tool-call arguments and results, tool
    schemas, ids, topic, surface, allowed metadata), and the number of values replaced per entity
    type plus "field:<label>" for fields outside the message text that changed (None instead of
    the copy when a ``drop`` policy applies)."""
    return Redactor(config).redact_many([conv])[0]


def redact_conversations(
    convs: Iterable[Conversation], config: RedactConfig | None = None, batch_size: int = 256
) -> tuple[list[Conversation], Counter[str]]:
    """Redact each conversation (numbering restarts per conversation); total counts per type.
    Dropped conversations are left out and counted as ``conversations_dropped``."""
    total: Counter[str] = Counter()
    out: list[Conversation] = []
    for red, counts in iter_redacted(convs, config, batch_size):
        total.update(counts)
        if red is not None:
            out.append(red)
    return out, total


def _batches(convs: Iterable[Conversation], size: int) -> Iterable[list[Conversation]]:
    batch: list[Conversation] = []
    for conv in convs:
        batch.append(conv)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


_worker_redactor: Redactor | None = None


def _worker_init(config: RedactConfig) -> None:
    global _worker_redactor
    _worker_redactor = Redactor(config)


def _worker_batch(batch: list[Conversation]) -> list[tuple[Conversation | None, Counter[str]]]:
    assert _worker_redactor is not None
    return _worker_redactor.redact_many(batch)


def iter_redacted(
    convs: Iterable[Conversation], config: RedactConfig | None = None, batch_size: int = 256, workers: int = 1
) -> Iterable[tuple[Conversation | None, Counter[str]]]:
    """Stream of (redacted conversation or None if dropped, counts), batch by batch, in input order.

    ``workers`` > 1 redacts batches in that many worker processes (each with its own model when NER
    is on); at most two batches per worker are in flight, so memory stays bounded."""
    config = config or RedactConfig.from_env()
    redactor = Redactor(config)  # loads (and checks) the NER model before any worker starts
    if workers <= 1:
        for batch in _batches(convs, batch_size):
            yield from redactor.redact_many(batch)
        return
    import multiprocessing
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init, initargs=(config,)) as pool:
        pending: deque = deque()
        for batch in _batches(convs, batch_size):
            pending.append(pool.submit(_worker_batch, batch))
            if len(pending) >= 2 * workers:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()


# ---------------------------------------------------------------------------- where residual PII sits


def _safe_segment(key: str) -> str:
    return "<key>" if find_pii(key) else key


def _json_strings(value: Any, path: str, _depth: int = 0) -> Iterator[tuple[str, str]]:
    """(path, string) for every string and dict key inside a JSON value; keys holding personal data
    are shown as ``<key>`` in paths."""
    if _depth > 50:
        return
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            seg = _safe_segment(str(k))
            yield f"{path}.<key>", str(k)
            yield from _json_strings(v, f"{path}.{seg}", _depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _json_strings(v, f"{path}[{i}]", _depth + 1)


def pii_places(column: str, text: str) -> list[tuple[str, str]]:
    """Where in a cell the deterministic detectors find personal data, as (field, type): the path
    inside a JSON cell (``messages[3].content``, ``tools[0].function.description``) or the column
    itself (``topic``). Never the value."""
    if text[:1] in "[{":
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, (dict, list)):
            out = [(path, s.type) for path, t in _json_strings(value, column) for s in find_pii(t)]
            if out:
                return out
    return [(column, s.type) for s in find_pii(text)]
