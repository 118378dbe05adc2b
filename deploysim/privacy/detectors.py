"""The deterministic detectors of personal data and secrets, and ``find_pii``.

Structured identifiers are validated rather than matched: payment cards (Luhn), IBANs (mod-97 and
per-country length), phone numbers (Google's libphonenumber via ``phonenumbers``, international
and national forms for DEPLOYSIM_PHONE_REGIONS), emails, US SSNs (number ranges), IPv4/IPv6
(parsed), MAC addresses. In context: dates of birth (after "born", "DOB", "date of birth", or a
``"dob"`` key), street addresses, URLs carrying credentials or tokens, secrets (known key
prefixes, ``password=`` style assignments, high-entropy strings), values of personal JSON keys in
tool results (``"first_name"``, ``"address1"``, ``"city"``, ``"dob"``, ...) and a record's own
user id. Also here: the entity types, the ``Span`` type and ``resolve_spans``, which keeps
non-overlapping spans (existing placeholders first, then stronger detector families, longer spans,
higher-priority types). Names, locations and organisations come from the spaCy model in
deploysim.privacy.ner, added by ``find_pii(ner=True)`` and by the Redactor
(deploysim.privacy.redaction).
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections import Counter
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, Iterator, Sequence
from urllib.parse import parse_qsl, urlsplit

STRUCTURED_TYPES = (
    "EMAIL",
    "PHONE",
    "CARD",
    "IBAN",
    "SSN",
    "IP",
    "MAC",
    "URL_SECRET",
    "API_KEY",
    "SECRET",
    "DATE_OF_BIRTH",
    "ADDRESS",
    "USER_ID",
    "NATIONAL_ID",
    "PASSPORT",
    "DRIVER_LICENSE",
)
NER_TYPES = ("PERSON", "LOCATION", "ORGANIZATION", "NRP")
# Quasi-identifiers (deploysim.privacy.quasi): redacted, not looked for by the residual-PII checks.
QUASI_TYPES = ("POSTCODE", "DATE", "AGE", "TITLE", "URL")
ENTITY_TYPES = STRUCTURED_TYPES + NER_TYPES + QUASI_TYPES

# On equal span length, the earlier type in this list wins.
_PRIORITY = {
    t: i
    for i, t in enumerate(
        (
            "USER_ID",
            "URL_SECRET",
            "API_KEY",
            "EMAIL",
            "IBAN",
            "CARD",
            "SSN",
            "NATIONAL_ID",
            "PASSPORT",
            "DRIVER_LICENSE",
            "MAC",
            "IP",
            "DATE_OF_BIRTH",
            "DATE",
            "PHONE",
            "SECRET",
            "URL",
            "ADDRESS",
            "POSTCODE",
            "AGE",
            "TITLE",
            "NRP",
            "PERSON",
            "LOCATION",
            "ORGANIZATION",
        )
    )
}
# Detector families: a span from a stronger family wins over any overlapping weaker one.
_FAMILY = (
    {t: 0 for t in STRUCTURED_TYPES + ("DATE", "AGE", "URL")}
    | {"ADDRESS": 1, "POSTCODE": 1, "TITLE": 1}
    | {t: 2 for t in NER_TYPES}
)

PSEUDONYM_RE = re.compile(r"<[A-Z_]+_(?:\d+|#[0-9a-f]{10})>")  # <EMAIL_1> or a hashed <EMAIL_#0a1b2c3d4e>


@dataclass(frozen=True)
class Span:
    type: str
    start: int
    end: int
    value: str
    rule: bool = field(default=False, compare=False)  # a name found by a rule (beats the NER model's guesses)


# ---------------------------------------------------------------------------- detectors

_EMAIL_RE = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}\b"
)

_URL_RE = re.compile(
    r"\b(?:https?|ftp|wss?|postgres(?:ql)?|mysql|mongodb(?:\+srv)?|redis|amqps?)://[^\s<>\"'`]+",
    re.IGNORECASE,
)
_USERINFO_RE = re.compile(r"^[a-z][a-z0-9+.-]*://[^/?#@\s:]+:[^/?#@\s]+@", re.IGNORECASE)
_QUERY_NAME_RE = re.compile(r"[?&#;]([A-Za-z0-9_.\-\[\]]+)=[^&#;\s]+")
_SECRET_WORDS = {
    "token",
    "key",
    "secret",
    "password",
    "passwd",
    "pwd",
    "pass",
    "sig",
    "signature",
    "auth",
    "session",
    "sessionid",
    "credential",
    "credentials",
    "apikey",
    "jwt",
    "accesstoken",
    "privatekey",
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


_API_KEY_HINT_RE = re.compile(
    r"sk-|gh[pousr]_|github_pat_|AKIA|ASIA|xox[abposr]-|AIza|glpat-|eyJ|[Bb][Ee][Aa][Rr][Ee][Rr]"
)
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


DEFAULT_PHONE_REGIONS = ("US", "GB", "DE", "FR", "IN", "CA", "AU")
_phone_regions: ContextVar[tuple[str, ...]] = ContextVar("phone_regions", default=DEFAULT_PHONE_REGIONS)


def phone_regions() -> tuple[str, ...]:
    """Where national phone numbers are recognised (the first region also accepts merely possible numbers)."""
    return _phone_regions.get()


@contextmanager
def using_phone_regions(regions: Sequence[str]) -> Iterator[None]:
    """Detect with these regions inside the block (the redactor's configuration: settings phone_regions)."""
    token = _phone_regions.set(tuple(r.strip().upper() for r in regions if r.strip()) or DEFAULT_PHONE_REGIONS)
    try:
        yield
    finally:
        _phone_regions.reset(token)


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


_PHONE_CONTEXT_RE = re.compile(
    r"\b(?:phone|tel|telephone|mobile|cell|cellphone|call me(?: at| on)?|text me(?: at| on)?|whatsapp|fax|landline|"
    r"(?:phone|mobile|cell|contact) number)\b\\?[\"']?(?:\s*(?:is|was|:|=|at|on|-))*\s*\\?[\"']?(\+?\(?\d[\d ().-]{5,18}\d)(?![\w-])",  # noqa: E501
    re.IGNORECASE,
)


def _context_phone_spans(text: str) -> Iterable[Span]:
    """Digits after a phone word ("call me at", "mobile:", "phone": ...) even when no configured
    region validates them (numbers of other countries)."""
    for m in _PHONE_CONTEXT_RE.finditer(text):
        s = m.group(1)
        if 7 <= len(re.sub(r"\D", "", s)) <= 15 and _phone_ok_shape(s):
            yield Span("PHONE", m.start(1), m.end(1), s)


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
    "AD": 24,
    "AE": 23,
    "AL": 28,
    "AT": 20,
    "AZ": 28,
    "BA": 20,
    "BE": 16,
    "BG": 22,
    "BH": 22,
    "BR": 29,
    "BY": 28,
    "CH": 21,
    "CR": 22,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DK": 18,
    "DO": 28,
    "EE": 20,
    "EG": 29,
    "ES": 24,
    "FI": 18,
    "FO": 18,
    "FR": 27,
    "GB": 22,
    "GE": 22,
    "GI": 23,
    "GL": 18,
    "GR": 27,
    "GT": 28,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IL": 23,
    "IQ": 23,
    "IS": 26,
    "IT": 27,
    "JO": 30,
    "KW": 30,
    "KZ": 20,
    "LB": 28,
    "LC": 32,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "MC": 27,
    "MD": 24,
    "ME": 22,
    "MK": 19,
    "MR": 27,
    "MT": 31,
    "MU": 30,
    "NL": 18,
    "NO": 15,
    "PK": 24,
    "PL": 28,
    "PS": 29,
    "PT": 25,
    "QA": 29,
    "RO": 24,
    "RS": 22,
    "SA": 24,
    "SC": 31,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "ST": 25,
    "SV": 28,
    "TL": 23,
    "TN": 24,
    "TR": 26,
    "UA": 29,
    "VA": 22,
    "VG": 24,
    "XK": 20,
}
_IBAN_RE = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{2}\d{2}(?:[ -]?[A-Za-z0-9]){11,30})(?![A-Za-z0-9])")


def iban_ok(iban: str) -> bool:
    """ISO 13616: country length, mod-97 == 1 and the country's BBAN structure (python-stdnum's IBAN
    registry: digits where the country has digits, so a hex digest such as be199b57db52f1d8 is not one).
    National check digits inside the BBAN are not required (test data often lacks them)."""
    from stdnum import iban as std_iban

    s = iban.replace(" ", "").replace("-", "").upper()
    if _IBAN_LENGTHS.get(s[:2]) != len(s) or not s.isalnum():
        return False
    return std_iban.is_valid(s, check_country=False)


def _iban_spans(text: str) -> Iterable[Span]:
    pos = 0
    while m := _IBAN_RE.search(text, pos):
        pos = m.start(1) + 1
        cand = m.group(1)
        want = _IBAN_LENGTHS.get(cand[:2].upper())
        if not want:
            continue
        # take exactly the country's length of characters (spaces or dashes allowed between)
        n, end = 0, 0
        for end, ch in enumerate(cand, start=1):  # noqa: B007 - end is read after the loop
            n += ch not in " -"
            if n == want:
                break
        value = cand[:end]
        if n == want and iban_ok(value):
            yield Span("IBAN", m.start(1), m.start(1) + len(value), value)
            pos = m.start(1) + len(value)


_MAC_RE = re.compile(
    r"(?<![\w:.-])(?:[0-9A-Fa-f]{2}([:-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4})(?![\w:-]|\.\w)"
)


def _mac_spans(text: str) -> Iterable[Span]:
    for m in _MAC_RE.finditer(text):
        hexes = re.sub(r"[^0-9A-Fa-f]", "", m.group(0))
        if (
            len(set(hexes.lower())) > 1
            and re.search(r"[A-Fa-f]", m.group(0))
            or hexes.isdigit() is False
            or ":" in m.group(0)
        ):
            if len(set(hexes)) > 1:
                yield Span("MAC", m.start(), m.end(), m.group(0))


# ---------------------------------------------------------------------------- values in context

_MONTHS = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?"
    r"|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_DATE_RE = re.compile(
    r"(?:(?:19|20)\d{2}[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])"
    r"|(?:0?[1-9]|[12]\d|3[01])[-/.](?:0?[1-9]|[12]\d|3[01])[-/.](?:19|20)?\d{2}"
    rf"|{_MONTHS}\.? (?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?,? (?:19|20)\d{{2}}"
    rf"|(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)? (?:of )?{_MONTHS}\.?,? (?:19|20)\d{{2}})(?!\d)",
    re.IGNORECASE,
)
_DOB_CONTEXT_RE = re.compile(
    r"(?:\b(?:born|birth ?date|birthday|date of birth|d\.?o\.?b\.?|dob|b-day)\b"
    r"|\"(?:dob|birthdate|birth_date|date_of_birth|birthday)\\?\")",
    re.IGNORECASE,
)


def _dob_spans(text: str) -> Iterable[Span]:
    for c in _DOB_CONTEXT_RE.finditer(text):
        window = text[c.end() : c.end() + 40]
        m = _DATE_RE.search(window)
        if m:
            yield Span("DATE_OF_BIRTH", c.end() + m.start(), c.end() + m.end(), m.group(0))


_STREET = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Ter|"
    r"Circle|Cir|Highway|Hwy|Parkway|Pkwy|Square|Sq|Trail|Trl|Crescent|Close|Alley|Row|Walk)"
)
_ADDR_STOP = (
    r"(?!(?:the|a|an|on|in|at|to|of|for|and|or|my|your|our|their|by|with|from|is|are|was|it|this|that|down|up)\b)"
)
_ADDRESS_RE = re.compile(
    rf"(?<![\w-])\d{{1,6}}[A-Za-z]?(?:[ ,]+{_ADDR_STOP}[^\W\d_][\w'.-]*){{1,4}} {_STREET}\b\.?"
    r"(?:,? (?:Apt|Apartment|Suite|Ste|Unit|Floor|Fl|#)\.? ?#?[\w-]{1,6})?",
    re.IGNORECASE,
)

_PERSONAL_KEYS = {
    "PERSON": (
        "first_name",
        "last_name",
        "full_name",
        "name",
        "customer_name",
        "passenger_name",
        "given_name",
        "family_name",
        "surname",
        "firstname",
        "lastname",
        "fullname",
        "middle_name",
        "contact_name",
        "holder",
        "account_holder",
        "cardholder",
        "author",
        "passenger",
        "recipient",
        "sender",
        "owner",
        "patient",
        "beneficiary",
        "employee",
    ),
    "ADDRESS": (
        "address",
        "address1",
        "address2",
        "address_line1",
        "address_line2",
        "street",
        "street_address",
        "zip",
        "zipcode",
        "zip_code",
        "postal_code",
        "postcode",
    ),
    "LOCATION": ("city", "town"),
    "DATE_OF_BIRTH": ("dob", "birthdate", "birth_date", "date_of_birth", "birthday"),
}
_KEY_TYPE = {k: t for t, keys in _PERSONAL_KEYS.items() for k in keys}
_KEY_RE = re.compile(
    r"\\?[\"']("
    + "|".join(sorted(_KEY_TYPE, key=len, reverse=True))
    + r")\\?[\"']\s*:\s*\\?[\"']([^\"'\\<>]{1,120})\\?[\"']",
    re.IGNORECASE,
)
_NAME_VALUE_RE = re.compile(r"[A-Z](?:[^\W\d_]|['.-])*(?: [A-Z](?:[^\W\d_]|['.-])*){0,3}")
_LOWER_NAME_VALUE_RE = re.compile(
    r"[^\W\d_](?:[^\W\d_]|['.-])*(?: [^\W\d_](?:[^\W\d_]|['.-])*){1,3}"
)  # "xavier marchand"


def _key_spans(text: str) -> Iterable[Span]:
    """Values of personal keys in JSON-like text (tool results): "first_name": "Mia"."""
    if '"' not in text and "'" not in text:
        return
    for m in _KEY_RE.finditer(text):
        type_ = _KEY_TYPE[m.group(1).lower()]
        value = m.group(2).strip()
        if not value or PSEUDONYM_RE.fullmatch(value):
            continue
        if m.group(1).lower() == "name" and not (
            _NAME_VALUE_RE.fullmatch(value) or _LOWER_NAME_VALUE_RE.fullmatch(value)
        ):
            continue  # "name": "get_order_status" is not a person
        if type_ == "PERSON" and not re.search(r"[A-Za-z]", value):
            continue
        start = m.start(2) + m.group(2).index(value)
        if type_ == "ADDRESS" and ", " in value:
            yield from _address_value_spans(value, start)
        else:
            yield Span(type_, start, start + len(value), value, rule=True)


def _address_value_spans(value: str, start: int) -> Iterable[Span]:
    """An address value in parts: the street (and units) as ADDRESS where the detectors find them,
    postcode and city left to them (deploysim.privacy.quasi), every other comma-separated part as
    ADDRESS, so that nothing of it stays in clear."""
    from deploysim.privacy.quasi import _postal_spans, street_spans

    pieces = list(street_spans(value)) + list(_postal_spans(value))
    if not pieces:
        yield Span("ADDRESS", start, start + len(value), value)
        return
    pos = 0
    for part in value.split(", "):
        a, b = pos, pos + len(part)
        pos = b + 2
        covered = [p for p in pieces if p.start < b and a < p.end]
        if not covered:
            yield Span("ADDRESS", start + a, start + b, part)
        yield from (Span("ADDRESS", start + p.start, start + p.end, p.value) for p in covered if p.type == "ADDRESS")


_SECRET_ASSIGN_RE = re.compile(
    r"\b(?:password|passwd|pwd|passphrase|secret|client[_-]?secret|api[_-]?key|access[_-]?key|secret[_-]?key|"
    r"auth[_-]?token|access[_-]?token|refresh[_-]?token|private[_-]?key)\\?[\"']?\s*[:=]\s*\\?[\"']?([^\s\"'`,;<>\\]{6,})",
    re.IGNORECASE,
)
_TOKEN_RE = re.compile(r"(?<![\w+/=.-])[A-Za-z0-9+/_-]{24,}={0,2}(?![\w+/=-])")
_ID_PREFIXES = (
    "call_",
    "toolu_",
    "chatcmpl-",
    "msg_",
    "resp_",
    "run_",
    "thread_",
    "asst_",
    "file-",
    "req_",
    "cmpl-",
    "batch_",
    "ftjob-",
    "evt_",
    "sess_",
)


def _entropy(s: str) -> float:
    counts = Counter(s)
    return -sum(c / len(s) * math.log2(c / len(s)) for c in counts.values())


def _secret_spans(text: str) -> Iterable[Span]:
    for m in _SECRET_ASSIGN_RE.finditer(text):
        val = m.group(1)
        if not PSEUDONYM_RE.search(val) and val.lower() not in ("none", "null", "true", "false", "required", "string"):
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


def structured_spans(text: str) -> Iterable[Span]:
    """Candidate spans of every deterministic detector, overlapping (resolve_spans picks among them)."""
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
        yield from _id_spans(text)
        yield from _dob_spans(text)
        yield from _address_spans(text)
        if _DIGITISH_RE.search(text):
            yield from _phonenumbers_spans(text)
            yield from _context_phone_spans(text)
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
    from deploysim.privacy.quasi import extended, street_spans

    for m in _ADDRESS_RE.finditer(text):
        yield extended(text, m.start(), m.group(0).rstrip(".,"))
    yield from street_spans(text)


def _rank(span: Span) -> float:
    family = _FAMILY[span.type]
    return min(family, 1.5) if span.rule else family


def resolve_spans(text: str, candidates: Iterable[Span]) -> list[Span]:
    """Non-overlapping spans: existing pseudonyms are kept, then stronger detector families,
    longer spans and higher-priority types win."""
    taken = [(m.start(), m.end()) for m in PSEUDONYM_RE.finditer(text)]
    chosen: list[Span] = []
    unique: dict[Span, Span] = {}
    for span in candidates:
        if span not in unique or (span.rule and not unique[span].rule):
            unique[span] = span
    order = sorted(unique.values(), key=lambda s: (_rank(s), -(s.end - s.start), _PRIORITY[s.type], s.start))
    for span in order:
        if span.end <= span.start or any(span.start < e and s < span.end for s, e in taken):
            continue
        chosen.append(span)
        taken.append((span.start, span.end))
    return sorted(chosen, key=lambda s: s.start)


def _id_spans(text: str) -> Iterable[Span]:
    from deploysim.privacy.identifiers import id_spans

    return id_spans(text)


def quasi_candidates(text: str) -> list[Span]:
    from deploysim.privacy.quasi import quasi_spans

    return list(quasi_spans(text))


def find_pii(text: str | None, *, ner: bool = False, ner_model: str | None = None, quasi: bool = False) -> list[Span]:
    """Non-overlapping PII and secret spans in text, in order; existing placeholders are skipped.

    By default only the deterministic detectors of direct identifiers run (what the residual-PII
    checks use); ``ner=True`` adds people, locations, organisations and groups from the spaCy model,
    ``quasi=True`` the quasi-identifiers (deploysim.privacy.quasi)."""
    if not text:
        return []
    cands = list(structured_spans(text))
    if quasi:
        cands += quasi_candidates(text)
    if ner:
        from deploysim.privacy import ner as ner_mod

        cands += [Span(*e) for e in ner_mod.entities([text], ner_model)[0]]
    return resolve_spans(text, cands)


def key_context_spans(key: str | None, text: str) -> list[Span]:
    """The value of a personal JSON key ("first_name": "Mia") found as a string of its own."""
    if not key or key.lower() not in _KEY_TYPE:
        return []
    out = []
    for s in _key_spans(json.dumps({key: text}, ensure_ascii=False)):
        i = text.find(s.value)
        if i >= 0:
            out.append(Span(s.type, i, i + len(s.value), s.value))
    return out
