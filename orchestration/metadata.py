"""The console's metadata in Dagster's types: tables, Markdown, percentages as floats."""

from __future__ import annotations

from typing import Any

import dagster as dg

from deploysim.report.tables import Table

OWNERS = ["team:release-engineering"]  # the owner of every asset, in the UI's catalogue
GROUPS = ["traffic", "simulation", "gate", "release", "scorecard"]  # lineage order, left to right


def table(t: Table) -> dg.TableMetadataValue:
    schema = dg.TableSchema([dg.TableColumn(c.name, c.type, description=c.description or None) for c in t.columns])
    names = [c.name for c in t.columns]
    return dg.MetadataValue.table([dg.TableRecord({n: r.get(n) for n in names}) for r in t.rows], schema=schema)


def value(key: str, v: Any) -> Any:
    """One metadata value: a Table as a table, dicts and lists as JSON, *_pct as a float."""
    if isinstance(v, Table):
        return table(v)
    if isinstance(v, (dict, list)):
        return dg.MetadataValue.json(v)
    if key.endswith("_pct") and isinstance(v, (int, float)):
        return dg.MetadataValue.float(float(v))
    if v is None:
        return dg.MetadataValue.null()
    return v


def as_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """A step's metadata dict, with `markdown` shown as the Markdown `summary`."""
    meta = dict(meta)
    md = meta.pop("markdown", None)
    out = {k: value(k, v) for k, v in meta.items()}
    if md:
        out["summary"] = dg.MetadataValue.md(md)
    return out
