"""Placeholder numbering within one conversation.

``PlaceholderState`` maps each value to its placeholder, so that within one conversation the same
value always gets the same one: numbering per type, starting above the placeholders already in
the texts; two spellings of one number or address share one; a person's first or last name alone
maps to the person's placeholder. It applies the configured policy (deploysim.privacy.policies)
when a value is first seen, counts the replacements, and remembers name-like values so that they
are replaced wherever else they occur verbatim.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from deploysim.privacy.detectors import NER_TYPES, Span
from deploysim.privacy.policies import DEFAULT_SECRET, RedactConfig, coarsen_value, hash_user_id, mask_value
from deploysim.rules import PLACEHOLDER_RE


def _normal(type_: str, value: str) -> str:
    """Key under which two spellings of one value share a placeholder."""
    if type_ in ("PHONE", "CARD", "SSN", "IBAN"):
        return re.sub(r"[^0-9A-Za-z]", "", value).upper()
    if type_ in ("EMAIL", "MAC"):
        return re.sub(r"[^0-9a-z@._+-]", "", value.lower())
    if type_ == "URL":  # one placeholder per site: "https://www.x.com/a" and "x.com" link
        host = re.sub(r"^[a-z][a-z0-9+.-]*://", "", value.lower()).split("/")[0].split("?")[0]
        return host[4:] if host.startswith("www.") else host
    if type_ in NER_TYPES or type_ in ("ADDRESS", "DATE_OF_BIRTH"):
        return " ".join(value.split()).lower()
    return value


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
                self.mapping[key] = mask_value(type_, value)
            elif policy == "coarsen" and (coarse := coarsen_value(type_, value)):
                self.mapping[key] = coarse
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
