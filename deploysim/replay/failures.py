"""What went wrong in a replay, in words safe to show: failure classes and redacted reasons.

Every conversation that fails ends as a record with a terminal reason (written by
deploysim.replay.client and deploysim.replay.engine); FAILURE_CLASSES maps reasons to classes
(failure_class, failure_classes groups a run's error records with a redacted example each),
endpoint_unusable says why a run found its endpoint unusable, and redact_reason replaces personal
data and anything shaped like a secret in a reason.
"""

from __future__ import annotations

import re
from typing import Any

from deploysim.schemas import ReplayRecord


def redact_reason(text: str) -> str:
    """An error reason with personal data and anything shaped like a secret replaced (deterministic
    detectors of deploysim.privacy.detectors)."""
    if not text:
        return text
    from deploysim.privacy.placeholders import PlaceholderState
    from deploysim.privacy.redaction import redact_text

    return redact_text(text, PlaceholderState()) or ""


# Failure classes of error reasons, first match wins (the reasons are written by the client and the engine).
FAILURE_CLASSES: list[tuple[str, str, re.Pattern[str]]] = [
    (name, label, re.compile(rx))
    for name, label, rx in [
        (
            "endpoint_unusable",
            "not attempted or stopped: endpoint unusable",
            r"^(not attempted|stopped): endpoint unusable",
        ),
        ("auth", "authentication refused (HTTP 401/403)", r"^HTTP 40[13]\b"),
        ("dns", "host name does not resolve", r"^cannot resolve host"),
        ("refused", "connection refused", r"^connection refused"),
        ("deadline", "run deadline exceeded", r"^deadline exceeded"),
        ("timeout", "request timed out", r"^timeout"),
        ("non_json", "non-JSON response (not an OpenAI-compatible API?)", r"^(HTTP \d+: )?non-JSON response"),
        ("malformed", "malformed JSON response", r"^malformed JSON response"),
        ("rate_limited", "rate limited (HTTP 429) after every retry", r"^HTTP 429\b"),
        ("server_error", "server error (HTTP 5xx)", r"^HTTP (5\d\d|408)\b"),
        ("rejected", "request rejected (HTTP 4xx)", r"^HTTP 4\d\d\b"),
        ("connection", "connection failed or cut", r"^connection error"),
        ("step_limit", "agent step limit reached", r"^step limit"),
    ]
]


def failure_class(reason: str | None) -> str:
    """The failure class of an error reason (see FAILURE_CLASSES; "other" when none fits)."""
    return next((name for name, _, rx in FAILURE_CLASSES if rx.search(reason or "")), "other")


def failure_classes(records: list[ReplayRecord]) -> list[dict[str, Any]]:
    """One entry per failure class among the error records, most frequent first:
    {"class", "label", "count", "example"} (example: one reason, redacted, never a key)."""
    counts: dict[str, int] = {}
    examples: dict[str, str] = {}
    for r in records:
        if r.status == "error":
            name = failure_class(r.error)
            counts[name] = counts.get(name, 0) + 1
            examples.setdefault(name, r.error or "?")
    labels = {name: label for name, label, _ in FAILURE_CLASSES} | {"other": "other error"}
    return [
        {"class": name, "label": labels[name], "count": n, "example": redact_reason(examples[name])[:300]}
        for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


_UNUSABLE_RE = re.compile(r"endpoint unusable \((.*)\)$")


def endpoint_unusable(records: list[ReplayRecord]) -> str | None:
    """Why the endpoint was found unusable during the run (a DNS failure, HTTP 401/403, refused or
    silent for too long, non-JSON answers), or None: then the run could not have gone on."""
    for r in records:
        if r.status == "error" and r.error:
            if m := _UNUSABLE_RE.search(r.error):
                return m.group(1)
            if failure_class(r.error) in ("dns", "auth"):
                return r.error
    return None
