"""Read-only looks at dbt's warehouse after a dbt step, for what the console shows: row counts,
the run's decision and gate rows, the replay summary. dbt stays the only writer."""

from __future__ import annotations

from typing import Any

from deploysim import lake


def path():
    return lake.home() / "warehouse.duckdb"


def _rows(con, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cur = con.execute(sql, params)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def _count(con, rel: str, keys: dict[str, str | None]) -> tuple[int, int | None]:
    """Rows of a relation, and of those its rows of this candidate (and run, where it keeps runs)."""
    cols = {d[0] for d in con.execute(f'select * from main."{rel}" limit 0').description}
    where = [c for c in keys if c in cols and keys[c] is not None]
    total = con.execute(f'select count(*) from main."{rel}"').fetchone()[0]
    if "candidate" not in where:
        return total, None
    sql = f'select count(*) from main."{rel}" where ' + " and ".join(f"{c} = ?" for c in where)
    return total, con.execute(sql, [keys[c] for c in where]).fetchone()[0]


def look(relations: list[str], candidate: str | None, run_id: str) -> dict[str, Any]:
    """{"counts": {relation: (rows, rows of this candidate and run or None)}, "decision": the run's
    release_decision row or None, "gate": its release_gate rows, "replay_summary": every candidate's
    row}. A relation that cannot be read is left out; {} when there is no warehouse yet or it is locked."""
    import duckdb

    if not path().exists():
        return {}
    try:
        con = duckdb.connect(str(path()), read_only=True)
    except duckdb.Error:  # another dbt is writing it: the console goes without, the run does not fail
        return {}
    try:
        tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
        counts: dict[str, tuple[int, int | None]] = {}
        for rel in relations:
            if rel in tables:
                try:
                    counts[rel] = _count(con, rel, {"candidate": candidate, "run_id": run_id})
                except duckdb.Error:  # e.g. a view over lake files since removed
                    pass
        out: dict[str, Any] = {"counts": counts, "decision": None, "gate": [], "replay_summary": []}
        if "release_decision" in tables:
            found = _rows(con, "select * from release_decision where candidate = ? and run_id = ?", [candidate, run_id])
            out["decision"] = found[0] if found else None
        if "release_gate" in tables:
            out["gate"] = _rows(
                con,
                "select * from release_gate where candidate = ? and run_id = ? order by behaviour",
                [candidate, run_id],
            )
        if "replay_summary" in tables:
            out["replay_summary"] = _rows(con, "select * from replay_summary order by candidate", [])
        return out
    finally:
        con.close()
