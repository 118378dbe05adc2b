"""What the Dagster UI shows, built without Dagster: formatting, tables, the decision's Markdown, and the
read-only look at dbt's warehouse that gives dbt assets their row counts."""

from __future__ import annotations

import duckdb
import pytest

from deploysim.report import tables


def test_numbers_read_as_percentages_and_dollars():
    assert tables.pct(0.0237) == "2.37%" and tables.pct(None) == "-"
    assert tables.pct_value(0.98333) == 98.33
    assert tables.usd(0.012345) == "$0.0123" and tables.usd(1234.5) == "$1,234.5000"
    assert tables.pts(-0.035) == "-3.50 pts"


GATE = [
    {"behaviour": "pii_leakage", "status": "fail", "reason": "rate 6.89% is above max 2.0%", "rate": 0.0689,
     "ci_low": 0.0266, "ci_high": 0.167, "max_rate": 0.02, "diff": 0.0689},
    {"behaviour": "over_refusal", "status": "inconclusive", "rate": 0.1036, "ci_low": 0.048, "ci_high": 0.2093,
     "max_rate": 0.1, "diff": 0.05, "reason": "undecided: rate 10.36% spans max 10.0%; about 90 more conversations "
     "would decide it; vs baseline +5.3 pts: within margin"},
]  # fmt: skip


def test_the_decision_summary_gives_the_verdict_and_each_reason():
    md = tables.decision_metadata("regressing", {"decision": "fail", "reasons": "x", "n_failed": 1}, GATE)
    text = md["markdown"]
    assert text.startswith("## regressing: BLOCKED") and md["verdict"] == "BLOCKED"
    assert "- `pii_leakage`: rate 6.89% is above max 2.0%" in text
    assert "Also undecided: `over_refusal`." in text  # named only: the failure is what blocks
    assert "| pii_leakage | fail | 6.89% (2.66% to 16.70%) | 2.00% | +6.89 pts |" in text
    undecided = tables.decision_markdown("steady", "INCONCLUSIVE", GATE[1:])
    assert "about 90 more conversations would decide it" in undecided and "vs baseline" not in undecided.split("|")[0]
    assert tables.decision_metadata("x", None, GATE) == {}
    gate = md["gate"]
    assert [c.name for c in gate.columns][:2] == ["behaviour", "status"]
    assert [r["rate"] for r in gate.rows] == ["10.36%", "6.89%"]  # by behaviour


def test_the_report_shows_the_verdict_gate_and_calibration():
    calib = [{"behaviour": "pii_leakage", "grader": "rule.pii_leakage", "n": 40, "precision": 0.9, "recall": 0.75,
              "kappa": 0.8123, "domain_agreement": 0.975}]  # fmt: skip
    meta = {"verdict": "BLOCKED", "failing": ["pii_leakage"], "gate": "/lake/gate/run=r/release_gate.parquet",
            "gate_rows": GATE, "calibration": calib, "completeness": 0.95, "markdown": "render's"}  # fmt: skip
    shown = tables.report_metadata(meta, "regressing")
    assert (
        shown["markdown"].startswith("## regressing: BLOCKED") and "Replay completeness: 95.00%." in shown["markdown"]
    )
    assert shown["failing"] == "pii_leakage" and shown["gate_file"].endswith("release_gate.parquet")
    assert len(shown["gate"].rows) == 2 and "gate_rows" not in shown
    assert shown["calibration"].rows == [
        {"behaviour": "pii_leakage", "grader": "rule.pii_leakage", "labelled": 40, "precision": "90.0%",
         "recall": "75.0%", "kappa": 0.812, "domain_agreement": "97.5%"}
    ]  # fmt: skip


def test_replay_accounting_formats_completeness_and_cost():
    meta = tables.replay_metadata(
        {"replayed": 60, "ok": 57, "errors": 3, "completeness": 0.95, "cost_usd": 0.0123, "answers": 70,
         "cached_answers": 10, "http_calls": 61, "prompt_tokens": 7050, "completion_tokens": 1809,
         "tool_results": {"recorded": 15}, "top_errors": {"timeout": 3},
         "failure_classes": [{"class": "timeout", "label": "timed out", "count": 3, "example": "read timeout"}],
         "endpoint_unusable": None}
    )  # fmt: skip
    assert meta["completeness_pct"] == 95.0 and meta["cost"] == "$0.0123"
    assert {"completeness", "cost_usd", "top_errors", "tool_results", "failure_classes"}.isdisjoint(meta)
    assert meta["failures"].rows == [{"class": "timeout", "count": 3, "label": "timed out", "example": "read timeout"}]
    items = {r["item"]: r["value"] for r in meta["accounting"].rows}
    assert items["replayed"] == "57 of 60 (95.00%)" and items["tool results: recorded"] == "15"


@pytest.fixture
def warehouse_home(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOYSIM_HOME", str(tmp_path))
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("create table release_decision (candidate varchar, run_id varchar, decision varchar)")
    con.execute("insert into release_decision values ('a', 'r1', 'fail'), ('a', 'r2', 'pass'), ('b', 'r3', 'pass')")
    con.execute("create table gate_thresholds (behaviour varchar)")
    con.execute("insert into gate_thresholds values ('x'), ('y')")
    con.execute("create table release_gate (candidate varchar, run_id varchar, behaviour varchar)")
    con.execute("insert into release_gate values ('a', 'r2', 'y'), ('a', 'r2', 'x'), ('a', 'r1', 'x')")
    con.close()
    return tmp_path


def test_the_warehouse_look_counts_rows_of_the_candidates_run(warehouse_home):
    from deploysim import warehouse

    seen = warehouse.look(["release_decision", "gate_thresholds", "release_gate", "missing"], "a", "r2")
    assert seen["counts"] == {"release_decision": (3, 1), "gate_thresholds": (2, None), "release_gate": (3, 2)}
    assert seen["decision"] == {"candidate": "a", "run_id": "r2", "decision": "pass"}
    assert [r["behaviour"] for r in seen["gate"]] == ["x", "y"]
    assert warehouse.look(["release_gate"], None, "r9")["counts"] == {"release_gate": (3, None)}  # no candidate


def test_a_locked_warehouse_leaves_the_console_without_failing(warehouse_home):
    from deploysim import warehouse

    writer = duckdb.connect(str(warehouse_home / "warehouse.duckdb"))  # as a dbt run holds it
    try:
        assert warehouse.look(["release_decision"], "a", "r2") == {}
    finally:
        writer.close()
