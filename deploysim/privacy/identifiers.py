"""National ID, passport and driver-licence numbers.

Shapes that are distinctive and carry a checksum are validated with ``python-stdnum`` and found
anywhere (Italian codice fiscale, Spanish DNI/NIE, Brazilian CPF, Finnish HETU, Swedish
personnummer, French NIR, Indian PAN, UK National Insurance numbers by shape). Numbers that a
checksum cannot tell from other numbers (Dutch BSN, Polish PESEL, German tax ID, Aadhaar, US
passports, any driver licence) are taken only after a word that names them ("passport", "driver's
licence", "national ID", "tax ID", "BSN", "PESEL", ...), as the value of a JSON key of that name, or
when their checksum holds and a generic "ID"/"number" word is near.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Callable, Iterable

from deploysim.privacy.detectors import Span


@lru_cache(maxsize=1)
def _validators() -> dict[str, Callable[[str], bool]]:
    from stdnum.br import cpf
    from stdnum.de import idnr
    from stdnum.dk import cpr
    from stdnum.es import dni, nie
    from stdnum.fi import hetu
    from stdnum.fr import nir
    from stdnum.in_ import aadhaar, pan
    from stdnum.it import codicefiscale
    from stdnum.nl import bsn
    from stdnum.pl import pesel
    from stdnum.pt import nif as pt_nif
    from stdnum.se import personnummer

    mods: dict[str, Any] = {
        "cpf": cpf,
        "idnr": idnr,
        "cpr": cpr,
        "dni": dni,
        "nie": nie,
        "hetu": hetu,
        "nir": nir,
        "aadhaar": aadhaar,
        "pan": pan,
        "cf": codicefiscale,
        "bsn": bsn,
        "pesel": pesel,
        "pt_nif": pt_nif,
        "pnr": personnummer,
    }
    return {k: m.is_valid for k, m in mods.items()}


# Found anywhere: (regex, validators that must accept one of them; None = the shape suffices)
_ANYWHERE = [
    (re.compile(r"(?<![\w-])[A-Z]{6}\d{2}[A-EHLMPR-T]\d{2}[A-Z]\d{3}[A-Z](?![\w-])"), ("cf",)),
    (re.compile(r"(?<![\w-])\d{8}-?[A-Z](?![\w-])"), ("dni",)),
    (re.compile(r"(?<![\w-])[XYZ]-?\d{7}-?[A-Z](?![\w-])"), ("nie",)),
    (re.compile(r"(?<![\w.-])\d{3}\.\d{3}\.\d{3}-\d{2}(?![\w-])"), ("cpf",)),
    (re.compile(r"(?<![\w-])[0-3]\d[01]\d{3}[-+A-FU-Y]\d{3}[0-9A-Y](?![\w-])"), ("hetu",)),
    (re.compile(r"(?<![\w-])(?:19|20)?\d{6}[-+]\d{4}(?![\w-])"), ("pnr", "cpr")),
    (re.compile(r"(?<![\w-])[12] ?\d{2} ?\d{2} ?(?:\d{2}|2A|2B) ?\d{3} ?\d{3} ?\d{2}(?![\w-])"), ("nir",)),
    (re.compile(r"(?<![\w-])[A-Z]{3}[PCHABGJLFT][A-Z]\d{4}[A-Z](?![\w-])"), ("pan",)),
    (
        re.compile(
            r"(?<![\w-])(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![\w-])"  # noqa: E501
        ),
        None,
    ),  # UK National Insurance number
    (re.compile(r"(?<![\w-])ZZ ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![\w-])"), None),  # NINO placeholder series, still personal
]

_SEP = r"[\s_-]*"
_NUMBER = rf"(?:{_SEP}(?:no\.?|number|num|#|id|card|code))?"
_KIND_WORDS = {
    "PASSPORT": rf"passport{_NUMBER}",
    "DRIVER_LICENSE": rf"driver'?s?{_SEP}licen[cs]e{_NUMBER}|driving{_SEP}licen[cs]e{_NUMBER}|licen[cs]e{_SEP}(?:no\.?|number|#)"  # noqa: E501
    r"|\bDL\b",
    "NATIONAL_ID": rf"national{_SEP}(?:id|identity|insurance){_NUMBER}|(?:tax|taxpayer|personal|citizen|social{_SEP}security"  # noqa: E501
    rf"|social{_SEP}insurance){_SEP}(?:id|no\.?|number|card|code|#)|nino|bsn|pesel|cpf|nif|nie|dni|hetu|personnummer"
    r"|cpr|aadhaar|aadhar|codice\s*fiscale|steuer-?id|steuernummer|idnr|itin|nir",
    # any "ID": only numbers whose national checksum holds
    "ID": r"\bid\b|identity\s*(?:no\.?|number|card)|identification(?:\s*(?:no\.?|number))?|id\s*(?:no\.?|number|card)",
    # the ID of a person ("your ID", "member ID"), not of an order or a ticket: long numbers too
    "PERSONAL_ID": r"(?:my|your|his|her|their|our|customer|user|patient|member|employee|student|personal)\s+(?:id|identity\s*(?:no\.?|number|card)"  # noqa: E501
    r"|identification(?:\s*(?:no\.?|number))?|id\s*(?:no\.?|number|card))|identity\s*(?:no\.?|number|card)",
}
_GAP = r"(?:[\s:=#(\-\"'.,\\]|\bit'?s\b|\bis\b|\bwas\b|\bare\b|\bnumber\b|\bno\b)*"
_KIND_RE = {
    kind: re.compile(r"(?<![\w])(?:" + words + r")(?![a-z])" + _GAP, re.IGNORECASE)
    for kind, words in _KIND_WORDS.items()
}
_VALUE_RE = re.compile(r"[A-Z0-9][A-Z0-9 .\-/]{3,22}[A-Z0-9]", re.IGNORECASE)


_GENERIC_ID_RE = re.compile(r"[A-Z]{0,3}[ -]?\d[\d .\-/]*\d(?: ?[A-Z])?", re.IGNORECASE)


def _digits(s: str) -> int:
    return sum(c.isdigit() for c in s)


def _value_after(text: str, pos: int) -> tuple[int, int] | None:
    """The ID-like token that starts at pos (after the naming word): 5+ characters, 4+ digits."""
    m = _VALUE_RE.match(text, pos)
    if not m:
        return None
    value = m.group(0)
    # stop at a space before a plain word ("U9594662. The", "P654 and it")
    parts = re.split(r"(\s+)", value)
    keep = parts[0]
    for i in range(1, len(parts) - 1, 2):
        nxt = parts[i + 1]
        if _digits(nxt) == 0 or len(parts[i]) > 1:
            break
        keep += parts[i] + nxt
    keep = keep.rstrip(".-/ ")
    end = pos + len(keep)
    if len(keep) < 5 or _digits(keep) < 4 or (end < len(text) and text[end].isalnum()):
        return None
    return pos, pos + len(keep)


def _checked(value: str, names: tuple[str, ...] | None) -> bool:
    if names is None:
        return True
    v = _validators()
    compact = re.sub(r"[\s.]", "", value)
    for n in names:
        try:
            if v[n](compact):
                return True
        except Exception:  # a validator that cannot read this shape
            continue
    return False


_HINTS = (
    "id", "passport", "licen", "dl", "number", "no", "nin", "pesel", "cpf", "aadha", "pan", "nif", "nie", "dni",
    "bsn", "tin", "sin", "cpr", "hetu", "fiscale", "steuer", "ssn", "nir", "personnummer",
)  # fmt: skip


_HINT_RE = re.compile("|".join(_HINTS), re.IGNORECASE)


def id_spans(text: str) -> Iterable[Span]:
    """National ID, passport and driver-licence numbers in text."""
    if not any(c.isdigit() for c in text):
        return
    for rx, names in _ANYWHERE:
        for m in rx.finditer(text):
            if _checked(m.group(0), names):
                yield Span("NATIONAL_ID", m.start(), m.end(), m.group(0))
    if not _HINT_RE.search(text):
        return
    for kind, rx in _KIND_RE.items():
        for m in rx.finditer(text):
            found = _value_after(text, m.end())
            if not found:
                continue
            s, e = found
            value = text[s:e]
            if kind == "ID" and not _checked(value, tuple(_validators())):
                continue
            if kind == "PERSONAL_ID" and not (_GENERIC_ID_RE.fullmatch(value) and _digits(value) >= 6):
                continue
            if kind in ("ID", "PERSONAL_ID"):
                kind = "NATIONAL_ID"
            yield Span(kind, s, e, value)
