"""Every gate decision of a candidate (from dbt's warehouse, read-only), and the garbage collection of
lake versions and reports that no kept decision references.

A decision is one gate evaluation: the rows of `release_gate` of one (candidate, run_id). Each row
names the estimate version it was decided on; the estimate's inputs.json names the grade, labels,
replay, sample and redacted versions it was made from (and so on up the chain), so what a decision
references can be followed through the lake without Dagster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from upath import UPath

from deploysim import lake

PASS, BLOCKED, INCONCLUSIVE = "pass", "blocked", "inconclusive"


def warehouse() -> Path:
    return lake.home() / "warehouse.duckdb"


def decisions(candidate: str | None = None) -> list[dict[str, Any]]:
    """Every gate evaluation, newest first: candidate, run_id, decided_at (UTC, ISO), sample_version,
    estimate_version, verdict (pass/blocked/inconclusive), failed (behaviours), undecided (behaviours),
    recorded (a release_decision row exists) and report (the run's report path, or None when it is
    gone). The warehouse is opened read-only: dbt stays its only writer."""
    import duckdb

    if not warehouse().exists():
        return []
    con = duckdb.connect(str(warehouse()), read_only=True)
    try:
        tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
        if "release_gate" not in tables:
            return []
        cols = {
            r[0]
            for r in con.execute(
                "select column_name from information_schema.columns where table_name = 'release_gate'"
            ).fetchall()
        }
        if "run_id" not in cols:  # a warehouse from before the history: nothing to list
            return []
        recorded = "release_decision" in tables
        sql = f"""
            select g.candidate, g.run_id, max(g.decided_at) as decided_at, any_value(g.sample_version),
                   any_value(g.estimate_version), count(*) filter (where g.status = 'fail') as n_failed,
                   coalesce(string_agg(g.behaviour, ', ' order by g.behaviour) filter (where g.status = 'fail'), ''),
                   coalesce(string_agg(g.behaviour, ', ' order by g.behaviour)
                            filter (where g.status = 'inconclusive'), ''),
                   {"bool_or(d.run_id is not null)" if recorded else "false"}
            from release_gate g
            {"left join release_decision d on d.candidate = g.candidate and d.run_id = g.run_id" if recorded else ""}
            where g.run_id is not null {"and g.candidate = $c" if candidate is not None else ""}
            group by g.candidate, g.run_id
            order by decided_at desc, g.run_id desc"""
        rows = con.execute(sql, {"c": candidate} if candidate is not None else {}).fetchall()
    finally:
        con.close()
    from deploysim.pipeline import report_path

    out = []
    for cand, run_id, at, sample_v, est_v, n_failed, failed, undecided, rec in rows:
        report = report_path(cand, run_id)
        out.append(
            {
                "candidate": cand,
                "run_id": run_id,
                "decided_at": at.isoformat() + "Z" if at else None,
                "sample_version": sample_v,
                "estimate_version": est_v,
                "verdict": BLOCKED if n_failed else INCONCLUSIVE if undecided else PASS,
                "failed": failed.split(", ") if failed else [],
                "undecided": undecided.split(", ") if undecided else [],
                "recorded": bool(rec),
                "report": str(report) if report.exists() else None,
            }
        )
    return out


# ---- garbage collection --------------------------------------------------------------------


@dataclass
class Collected:
    removed: list[Path | UPath] = field(default_factory=list)
    bytes: int = 0
    kept_runs: dict[str, list[str]] = field(default_factory=dict)


def referenced(estimates: list[tuple[str, str]]) -> set[tuple[str, str | None, str]]:
    """(asset, candidate or None, version) of every lake version the given (candidate, estimate version)s
    were made from, following inputs.json up the chain."""
    unpartitioned = {"sample", "redacted", "frame"}
    seen: set[tuple[str, str | None, str]] = set()
    todo: list[tuple[str, str | None, str]] = [("estimate", c, v) for c, v in estimates if v]
    while todo:
        asset, cand, version = todo.pop()
        if (asset, cand, version) in seen:
            continue
        seen.add((asset, cand, version))
        inputs = lake.version_inputs(asset, cand, version) if cand is None or "=" not in cand else {}
        for up, v in inputs.items():
            if not v:
                continue
            if up == "days" and isinstance(v, dict):  # a frame of days: each day's redacted version
                seen.update(("redacted", f"day={d}", dv) for d, dv in v.items())
                continue
            if up == "redacted":
                todo.append(("frame", None, v))  # the sample's frame of days has the redacted version's name
            if up == "baseline_replay":
                from deploysim import candidates as reg

                try:
                    base = reg.get(cand or "").baseline
                except (KeyError, ValueError):
                    continue
                todo.append(("replay", base, v))
            else:
                todo.append((up, None if up in unpartitioned else cand, v))
    return seen


def collect(keep: int, dry_run: bool = False) -> Collected:
    """Remove the lake version folders, gate exports and reports that none of the `keep` newest decisions
    of each candidate references and that are not the latest version of their asset (or the newest
    report of their candidate). With dry_run, only say what would go."""
    if keep < 1:
        raise ValueError("--keep must be at least 1 (the newest decision of each candidate is always kept)")
    from deploysim.pipeline import gate_dir, gate_path, reports_dir

    out = Collected()
    by_cand: dict[str, list[dict[str, Any]]] = {}
    for d in decisions():
        by_cand.setdefault(d["candidate"], []).append(d)
    kept = {c: ds[:keep] for c, ds in by_cand.items()}
    out.kept_runs = {c: [d["run_id"] for d in ds] for c, ds in kept.items()}
    refs = referenced([(c, d["estimate_version"]) for c, ds in kept.items() for d in ds])
    victims: list[Path | UPath] = []
    root = lake.root()
    for vdir in lake.glob(root, "*/version=*") + lake.glob(root, "*/candidate=*/version=*"):
        rel = lake.parts(vdir)
        asset, version = rel[0], vdir.name.removeprefix("version=")
        cand = rel[1].removeprefix("candidate=") if len(rel) == 3 else None
        if (asset, cand, version) in refs or lake.latest_version(asset, cand) == version:
            continue
        victims.append(vdir)
    for vdir in lake.glob(root, "*/day=*/version=*"):  # a day's older versions (its latest is kept)
        asset, day, version = lake.parts(vdir)
        if (asset, day, version.removeprefix("version=")) in refs:
            continue
        if lake.latest_day_version(asset, day.removeprefix("day=")) != version.removeprefix("version="):
            victims.append(vdir)
    for cand, _ds in by_cand.items():
        runs = set(out.kept_runs[cand])
        newest = gate_path(cand).parent  # the folder of the newest export
        for gdir in lake.glob(gate_dir(cand), "run=*"):
            if gdir.name.removeprefix("run=") not in runs and str(gdir) != str(newest):
                victims.append(gdir)
        rep = reports_dir(cand)
        latest = (rep / lake.LATEST).read_text().strip() if (rep / lake.LATEST).exists() else None
        for rdir in sorted(p for p in rep.glob("*") if p.is_dir()):
            if rdir.name not in runs and rdir.name != latest:
                victims.append(rdir)
    for v in victims:
        out.bytes += lake.size(v)
        out.removed.append(v)
        if not dry_run:
            lake.remove(v)
    return out
