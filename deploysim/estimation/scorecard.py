"""The forecast scorecard: a simulated model's forecast rates against what production later showed.

Per behaviour (for a candidate that was simulated before release and whose production logs arrived
afterwards, graded with `deploysim grade --observed NAME`):
  multiplicative error  max(f/o, o/f), rates floored at half an event (0.5/n, n the larger of the two
                        applicable counts) so a zero stays finite
  direction right       the forecast's change vs the previous model (the baseline rate on the same
                        conversations) has the sign of the observed change (both up, both down, both flat;
                        raw rates)
  moved                 the observed rate differs from the previous one by at least 1.5x
Summary: median multiplicative error, share within 2x and 10x, direction accuracy over moved behaviours.
Computed once, here (`write`, called by the `observed` step); the dbt marts `scorecard` and
`scorecard_summary` keep what it wrote, and `load` reads it back.
"""

from __future__ import annotations

import math
from pathlib import Path
from statistics import median
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from upath import UPath

MOVED = 1.5


def _floor(rate: float, n: int) -> float:
    return max(rate, 0.5 / max(n, 1))  # half an event


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def score(forecast: list[dict[str, Any]], observed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """forecast: estimate rows (rate, baseline_rate, n_applicable); observed: rows (rate, n_applicable)."""
    obs = {o["behaviour"]: o for o in observed}
    rows = []
    for f in sorted(forecast, key=lambda r: r["behaviour"]):
        o = obs.get(f["behaviour"])
        if o is None:
            continue
        n = max(f["n_applicable"], o["n_applicable"])
        fr, orr, pr = _floor(f["rate"], n), _floor(o["rate"], n), _floor(f["baseline_rate"], n)
        fd, od = _sign(f["rate"] - f["baseline_rate"]), _sign(o["rate"] - f["baseline_rate"])
        rows.append(
            {
                "candidate": f.get("candidate"),
                "behaviour": f["behaviour"],
                "forecast_rate": f["rate"],
                "forecast_ci_low": f["ci_low"],
                "forecast_ci_high": f["ci_high"],
                "observed_rate": o["rate"],
                "previous_rate": f["baseline_rate"],
                "multiplicative_error": max(fr / orr, orr / fr),
                "forecast_direction": fd,
                "observed_direction": od,
                "direction_right": fd == od,
                "moved": max(orr / pr, pr / orr) >= MOVED,
            }
        )
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    errs = [r["multiplicative_error"] for r in rows]
    moved = [r for r in rows if r["moved"]]
    return {
        "n_behaviours": len(rows),
        "median_multiplicative_error": median(errs) if errs else math.nan,
        "share_within_2x": sum(e <= 2 for e in errs) / len(errs) if errs else math.nan,
        "share_within_10x": sum(e <= 10 for e in errs) / len(errs) if errs else math.nan,
        "n_moved": len(moved),
        "direction_accuracy_moved": sum(r["direction_right"] for r in moved) / len(moved) if moved else math.nan,
    }


def observed_path(candidate: str) -> UPath:
    from deploysim import lake

    return lake.lake_path("observed", candidate)


def write_observed(candidate: str, rates: list[dict[str, Any]]) -> UPath:
    """Store observed production rates ({behaviour, n_applicable, n_flagged, rate, ci_low, ci_high})."""
    from deploysim import lake

    p = observed_path(candidate)
    lake.write_rows(p, [{"candidate": candidate, **r} for r in rates])
    return p


def scorecard_path(candidate: str, name: str = "scorecard") -> UPath:
    from deploysim import lake

    return lake.lake_path("scorecard", candidate, name)


def write(candidate: str, estimate_path: Path | UPath) -> tuple[list[dict], dict[str, Any]] | None:
    """Score a candidate's forecast (its estimate at estimate_path) against its stored observed rates and
    store the rows and the summary for the marts and the report; None when either is missing."""
    from deploysim import lake

    if not lake.exists(observed_path(candidate)) or not lake.exists(estimate_path):
        return None
    rows = score(lake.read_rows(estimate_path), lake.read_rows(observed_path(candidate)))
    s = summary(rows)
    lake.write_rows(scorecard_path(candidate), [{**r, "candidate": candidate} for r in rows])
    lake.write_rows(scorecard_path(candidate, "summary"), [{"candidate": candidate, **s}])
    return rows, s


def load(candidate: str) -> tuple[list[dict], dict[str, Any]] | None:
    """The scorecard `write` stored for a candidate, or None before its production logs were scored."""
    from deploysim import lake

    if not lake.exists(scorecard_path(candidate)) or not lake.exists(scorecard_path(candidate, "summary")):
        return None
    summ = lake.read_rows(scorecard_path(candidate, "summary"))[0]
    summ.pop("candidate", None)
    return sorted(lake.read_rows(scorecard_path(candidate)), key=lambda r: r["behaviour"]), summ


def format_table(rows: list[dict[str, Any]], s: dict[str, Any]) -> str:
    head = f"{'behaviour':<34}{'previous':>9}{'forecast':>10}{'observed':>10}{'error':>8}  direction"
    lines = [head, "-" * (len(head) + 6)]
    arrow = {1: "up", -1: "down", 0: "flat"}
    for r in rows:
        lines.append(
            f"{r['behaviour']:<34}{r['previous_rate']:>9.2%}{r['forecast_rate']:>10.2%}{r['observed_rate']:>10.2%}"
            f"{r['multiplicative_error']:>7.2f}x  {arrow[r['forecast_direction']]}/{arrow[r['observed_direction']]}"
            f" {'right' if r['direction_right'] else 'WRONG'}{' (moved)' if r['moved'] else ''}"
        )
    lines.append(
        f"median multiplicative error {s['median_multiplicative_error']:.2f}x; within 2x {s['share_within_2x']:.0%}; "
        f"within 10x {s['share_within_10x']:.0%}; direction right for {s['direction_accuracy_moved']:.0%} "
        f"of {s['n_moved']} behaviours that moved >= {MOVED}x"
    )
    return "\n".join(lines)
