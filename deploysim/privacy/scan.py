"""Residual-PII scans: where the deterministic detectors still find personal data.

Detectors only, no NER (so redacted text gives no false alarms), and places and counts only, never
the values: ``pii_places`` for one cell (the path inside a JSON cell such as
``messages[3].content``, or the column), ``strings_in`` and ``scan_texts`` for arbitrary values
such as Dagster metadata.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Iterator, Mapping

from deploysim.privacy.detectors import find_pii


def strings_in(value: Any, _depth: int = 0) -> Iterator[str]:
    """Every string inside a value, for residual-PII scans of metadata: strings themselves, dict keys
    and values, list/tuple/set items, and the payload of objects that carry one in ``.value`` (as
    Dagster's MetadataValue does: JSON, Markdown, text, path...), the fields of named tuples and records
    (a table's records), and anything else as ``str()``."""
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
    elif hasattr(value, "value") and value.value is not value:
        yield from strings_in(value.value, _depth + 1)
    elif isinstance(value, tuple) and hasattr(value, "_fields"):  # named records (a table's rows): by field
        for name in value._fields:
            yield from strings_in(getattr(value, name), _depth + 1)
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
