"""How to redact: ``RedactConfig``, the per-type policies, keyed pseudonyms and time coarsening.

``RedactConfig.from_settings`` builds it from the settings. Per entity type a policy chooses
``replace`` (<TYPE_n>), ``mask`` (stars, keeping the last 4 characters of numbers: ``mask_value``),
``hash`` (a keyed pseudonym <TYPE_#0123456789>, equal across conversations for the same value, so
the same user links without being revealed) or ``drop`` (the whole conversation is left out).
Keyed hashing with the redaction secret (HMAC-SHA256) gives the metadata user-id pseudonym
(``hash_user_id``) and the ``redacted_<16 hex>`` pseudonym that replaces whole ids and names
holding personal data (``hash_identifier``); ``coarsen_time`` truncates timestamps to the
configured granularity.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from deploysim.errors import ConfigError
from deploysim.privacy.detectors import DEFAULT_PHONE_REGIONS, ENTITY_TYPES
from deploysim.settings import Settings, split_list
from deploysim.settings import load as load_settings

POLICIES = ("replace", "mask", "hash", "drop", "coarsen")
COARSENED = ("DATE", "DATE_OF_BIRTH")  # the types "coarsen" applies to: kept as their year
DEFAULT_POLICIES = {"USER_ID": "hash", "DATE": "coarsen"}
DEFAULT_SECRET = "deploysim-default-redaction-secret"  # set DEPLOYSIM_REDACT_SECRET in production
DEFAULT_METADATA_ALLOW = ("omitted_parts", "control_chars_removed", "task_id", "trial", "reward")
GRANULARITIES = ("none", "second", "minute", "hour", "day", "week", "month")


class RedactConfigError(ConfigError):
    """A redaction setting that cannot be used."""


@dataclass(frozen=True)
class RedactConfig:
    """How to redact. ``RedactConfig.from_settings(settings)`` builds it from these settings:

    DEPLOYSIM_REDACT_NER (0/1, default 1: names, locations and organisations with spaCy; a bare
    RedactConfig() runs the deterministic detectors only),
    DEPLOYSIM_NER_MODEL, DEPLOYSIM_REDACT_QUASI (0/1, default 1: postcodes, dates, ages, titles, groups,
    web addresses; deploysim.privacy.quasi), DEPLOYSIM_REDACT_POLICY
    ("SSN=drop,EMAIL=hash"; default replace), DEPLOYSIM_REDACT_SECRET, DEPLOYSIM_TIME_GRANULARITY
    (default day), DEPLOYSIM_METADATA_ALLOW (extra metadata keys kept, redacted),
    DEPLOYSIM_PHONE_REGIONS (default US,GB,DE,FR,IN,CA,AU).
    """

    ner: bool = False
    ner_model: str | None = None
    quasi: bool = True
    policies: tuple[tuple[str, str], ...] = ()
    secret: str = DEFAULT_SECRET
    time_granularity: str = "day"
    metadata_allow: tuple[str, ...] = DEFAULT_METADATA_ALLOW
    phone_regions: tuple[str, ...] = DEFAULT_PHONE_REGIONS

    def __post_init__(self) -> None:
        for t, pol in self.policies:
            if pol not in POLICIES:
                raise RedactConfigError(
                    f"unknown redaction policy {pol!r} for {t}; choose one of {', '.join(POLICIES)}"
                )
            if t not in ENTITY_TYPES:
                raise RedactConfigError(f"unknown entity type {t!r}; choose among {', '.join(ENTITY_TYPES)}")
            if pol == "coarsen" and t not in COARSENED:
                raise RedactConfigError(f"policy coarsen applies to {', '.join(COARSENED)}, not {t}")
        if self.time_granularity not in GRANULARITIES:
            raise RedactConfigError(
                f"unknown time granularity {self.time_granularity!r}; choose one of {', '.join(GRANULARITIES)}"
            )

    def policy(self, type_: str) -> str:
        # a user id in text defaults to its keyed pseudonym, so it links to the hashed metadata user_id;
        # dates of events are kept as their year
        return dict(self.policies).get(type_, DEFAULT_POLICIES.get(type_, "replace"))

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> RedactConfig:
        """The configuration the settings give (redact_ner, ner_model, redact_policy, redact_secret,
        time_granularity, metadata_allow, phone_regions); overrides win."""
        pols = []
        for item in split_list(settings.redact_policy):
            if "=" not in item:
                raise RedactConfigError(f"redaction policy item {item!r} is not TYPE=policy (DEPLOYSIM_REDACT_POLICY)")
            t, pol = item.split("=", 1)
            pols.append((t.strip().upper(), pol.strip().lower()))
        kw: dict[str, Any] = dict(
            ner=settings.redact_ner,
            ner_model=settings.ner_model,
            quasi=settings.redact_quasi,
            policies=tuple(pols),
            secret=settings.secret() or DEFAULT_SECRET,
            time_granularity=settings.time_granularity.strip().lower(),
            metadata_allow=DEFAULT_METADATA_ALLOW + split_list(settings.metadata_allow),
            phone_regions=tuple(r.upper() for r in split_list(settings.phone_regions)) or DEFAULT_PHONE_REGIONS,
        )
        kw.update(overrides)
        return cls(**kw)


def default_config() -> RedactConfig:
    """The configuration of the current settings (the environment's), for callers that give none."""
    return RedactConfig.from_settings(load_settings())


def coarsen_value(type_: str, value: str) -> str | None:
    """The ``coarsen`` policy: a date kept as its year ("12/27/1986" -> "1986"); None when none shows."""
    years = re.findall(r"(?<!\d)(?:1[89]|20)\d{2}(?!\d)", value)
    return years[0] if years else None


def mask_value(type_: str, value: str) -> str:
    """The ``mask`` policy: stars, keeping the last 4 characters of numbers (cards, phones, IBANs, SSNs)."""
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


def _secret(config: RedactConfig | None = None) -> str:
    return (config or default_config()).secret


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


ID_PSEUDONYM_RE = re.compile(r"redacted_[0-9a-f]{16}")


def hash_identifier(value: str, config: RedactConfig | None = None) -> str:
    """Keyed pseudonym of an id or name holding personal data: ``redacted_<16 hex>``, stable across
    runs for the same value and secret, and valid as a tool name or tool-call id."""
    digest = hmac.new(_secret(config).encode("utf-8"), f"id:{value}".encode("utf-8"), hashlib.sha256).hexdigest()
    return f"redacted_{digest[:16]}"
