"""The forecast scorecard end to end on demo data, and `deploysim grade`.

Before release: demo production logs (seed 7) are simulated for `steady` through the pipeline's
steps (ingest, redact, sample, replay over HTTP, grade, estimate). After release: fresh demo traffic
(seed 8) is answered by the released `steady` model, written as production logs, and graded with
`deploysim grade --observed steady`. dbt's scorecard marts must agree with deploysim.estimation.scorecard.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from deploysim import lake
from deploysim.estimation import scorecard

DBT = Path(__file__).resolve().parents[1] / "dbt"
N = 600


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scorecard")
    mp = pytest.MonkeyPatch()
    mp.setenv("DEPLOYSIM_HOME", str(tmp / "home"))
    from deploysim import pipeline
    from deploysim.candidates import Candidate, register
    from deploysim_testkit import demo
    from deploysim_testkit.endpoint import start_in_thread

    before = demo.generate(tmp / "home" / "raw", n=N, seed=7)
    post = tmp / "production_after_release.jsonl"
    with start_in_thread() as server:
        cand = Candidate(name="steady", base_url=server.base_url, model="steady")
        register(cand)
        pipeline.run_ingest(str(before.logs))
        pipeline.run_redact()
        pipeline.run_sample(N, 7)
        pipeline.run_replay("steady")
        pipeline.run_grade("steady")
        pipeline.run_estimate("steady")
        assert demo.production_after_release(cand, post, n=N, seed=8, cache=tmp / "cache.sqlite") > N * 0.95
    yield tmp, post
    mp.undo()


def test_grade_cli_writes_one_line_per_conversation_behaviour_grader(released, capsys):
    from deploysim.grading import taxonomy
    from orchestration import cli

    tmp, post = released
    out = tmp / "grades.jsonl"
    assert cli.main(["grade", str(post), "--out", str(out), "--observed", "steady"]) == 0
    printed = capsys.readouterr().out
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    n_conv = len(post.read_text().splitlines())
    tax = taxonomy.load()
    assert len(lines) == n_conv * len(tax.behaviours)  # one rule grader each
    assert {(x["behaviour"], x["grader"]) for x in lines} == {
        (b.id, g) for b in tax.behaviours for g in b.graders if g.startswith("rule.")
    }  # no judge configured
    assert {x["verdict"] for x in lines} == {"flagged", "not_flagged", "not_applicable"}
    for x in lines:
        assert x["flagged"] == (x["verdict"] == "flagged")
        if x["behaviour"] == "over_refusal" and x["applicable"]:
            assert x["flagged"] == x["signals"]["refused"]  # the verdict follows its signal
    text = out.read_text()
    assert "@example.com" not in text and "555-" not in text  # graded after redaction
    obs = {r["behaviour"]: r for r in lake.read_rows(scorecard.observed_path("steady"))}
    harm = [x for x in lines if x["behaviour"] == "harmful_compliance" and x["applicable"]]
    assert obs["harmful_compliance"]["n_applicable"] == len(harm)
    assert obs["harmful_compliance"]["n_flagged"] == sum(x["flagged"] for x in harm)
    assert "harmful_compliance" in printed and "95% CI" in printed


def test_scorecard_on_demo_data_computed_once_and_kept_by_dbt(released):
    tmp, _ = released
    card = scorecard.load("steady")
    assert card is not None
    rows, s = card
    from deploysim.grading import taxonomy

    assert len(rows) == len(taxonomy.load().behaviours)  # one row per behaviour of the taxonomy
    by = {r["behaviour"]: r for r in rows}
    # steady improves on the logged production model: these fell by >= 1.5x and the forecast saw it
    for b in ("harmful_compliance", "over_refusal", "injection_following"):
        assert by[b]["moved"] and by[b]["forecast_direction"] == by[b]["observed_direction"] == -1, by[b]
    assert s["median_multiplicative_error"] <= 2.0 and s["share_within_10x"] == 1.0
    # behaviours the forecast saw at 0 events and production at 1-2 (invalid_tool_call, self-harm support at
    # steady's 5%) also count as "moved" at n=600; the three large movers above must be right
    assert s["direction_accuracy_moved"] >= 0.6
    print("\n" + scorecard.format_table(rows, s))

    project = tmp / "project"
    shutil.copytree(DBT, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", ".user.yml"))
    env = os.environ | {"DBT_LOG_PATH": str(tmp / "logs"), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    p = subprocess.run(
        [
            str(Path(sys.executable).parent / "dbt"),
            "build",
            "--select",
            "stg_estimate+scorecard_summary",
            "scorecard",
            "stg_estimate",
            "--vars",
            "{candidate: steady}",
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(project),
            "--target-path",
            str(tmp / "target"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert p.returncode == 0, p.stdout[-3000:]
    with duckdb.connect(str(tmp / "home" / "warehouse.duckdb"), read_only=True) as con:
        got = {
            b: (me, fd, od, mv)
            for b, me, fd, od, mv in con.execute(
                "select behaviour, multiplicative_error, forecast_direction, observed_direction, moved from scorecard"
            ).fetchall()
        }
        summ = con.execute(
            "select median_multiplicative_error, share_within_2x, share_within_10x, n_moved, "
            "direction_accuracy_moved from scorecard_summary where candidate = 'steady'"
        ).fetchone()
    assert set(got) == set(by)
    for b, (me, fd, od, mv) in got.items():
        assert me == pytest.approx(by[b]["multiplicative_error"]) and (fd, od, mv) == (
            by[b]["forecast_direction"],
            by[b]["observed_direction"],
            by[b]["moved"],
        )
    assert summ == pytest.approx(
        (
            s["median_multiplicative_error"],
            s["share_within_2x"],
            s["share_within_10x"],
            s["n_moved"],
            s["direction_accuracy_moved"],
        )
    )


def test_score_arithmetic():
    f = [
        {"behaviour": "a", "rate": 0.02, "baseline_rate": 0.01, "n_applicable": 100, "ci_low": 0, "ci_high": 0.1},
        {"behaviour": "b", "rate": 0.0, "baseline_rate": 0.05, "n_applicable": 100, "ci_low": 0, "ci_high": 0.1},
        {"behaviour": "c", "rate": 0.10, "baseline_rate": 0.10, "n_applicable": 100, "ci_low": 0, "ci_high": 0.2},
    ]
    o = [
        {"behaviour": "a", "rate": 0.005, "n_applicable": 200},
        {"behaviour": "b", "rate": 0.01, "n_applicable": 50},
        {"behaviour": "c", "rate": 0.10, "n_applicable": 100},
    ]
    rows = {r["behaviour"]: r for r in scorecard.score(f, o)}
    assert rows["a"]["multiplicative_error"] == pytest.approx(4.0) and not rows["a"]["direction_right"]
    assert rows["b"]["multiplicative_error"] == pytest.approx(0.01 / 0.005)  # 0 floored at half an event of 100
    assert rows["b"]["direction_right"] and rows["b"]["moved"]
    assert rows["c"]["direction_right"] and not rows["c"]["moved"] and rows["c"]["multiplicative_error"] == 1.0
    s = scorecard.summary(list(rows.values()))
    assert s["median_multiplicative_error"] == pytest.approx(2.0)
    assert (s["share_within_2x"], s["share_within_10x"]) == (pytest.approx(2 / 3), 1.0)
    assert (s["n_moved"], s["direction_accuracy_moved"]) == (2, 0.5)


def test_human_labels_give_calibration_and_ppi(released):
    """Labels on 120 candidate turns (6 disagreeing with the grader) -> calibration row and PPI++ in the estimate."""
    import csv

    from deploysim import pipeline
    from deploysim.grading import calibration
    from deploysim.report.render import ReportData, markdown, render_html

    tmp, _ = released
    grades = [
        g
        for g in lake.read_rows(lake.current("grade", "steady"))
        if g["system"] == "candidate" and g["behaviour"] == "over_refusal" and g["applicable"]
    ]
    grades.sort(key=lambda g: (not g["flagged"], g["conversation_id"]))
    picked = grades[:120]
    flips = {g["conversation_id"] for g in picked[::20]}  # 6 disagreements
    path = tmp / "labels.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["conversation_id", "behaviour", "label", "system"])
        for g in picked:
            w.writerow(
                [
                    g["conversation_id"],
                    "over_refusal",
                    "yes" if g["flagged"] != (g["conversation_id"] in flips) else "no",
                    "candidate",
                ]
            )
    assert calibration.import_labels(path) == 120
    assert pipeline.run_labels("steady")["labels"] == 120
    pipeline.run_estimate("steady")
    est = {e["behaviour"]: e for e in lake.read_rows(lake.current("estimate", "steady"))}
    e = est["over_refusal"]
    assert e["n_labelled"] == 120 and e["ppi_rate"] is not None and e["ppi_ci_low"] <= e["ppi_rate"] <= e["ppi_ci_high"]
    assert est["pii_leakage"]["ppi_rate"] is None  # no labels, no correction
    table = calibration.calibration_table(
        lake.read_rows(lake.current("grade", "steady")), lake.read_rows(pipeline.labels_path("steady")), "steady"
    )
    [row] = table
    a = row.agreement
    assert (row.behaviour, row.grader, a.n, a.fp + a.fn) == ("over_refusal", "rule.over_refusal", 120, 6)
    print("\n" + calibration.format_table(table))
    data = ReportData(
        candidate="steady",
        model="steady",
        baseline="production",
        gate=[],
        replay={"ok": 1, "replayed": 1, "completeness": 1.0},
        scorecard=scorecard.load("steady"),
        calibration=[r.as_dict() for r in table],
        ppi=[e],
    )
    page = render_html(data)
    assert 'id="calibration"' in page and 'id="scorecard"' in page and 'id="ppi"' in page and "Holm" in page
    assert "Forecast scorecard: median multiplicative error" in markdown(data)


def test_label_files_are_validated(tmp_path):
    from deploysim.grading import calibration

    good = tmp_path / "l.jsonl"
    good.write_text(
        '{"conversation_id": "c1", "behaviour": "over_refusal", "label": 1}\n\n'
        '{"conversation_id": "c2", "behaviour": "pii_leakage", "label": false, "system": "baseline"}\n'
    )
    labels = calibration.load_labels(good)
    assert [(lab.label, lab.system) for lab in labels] == [(True, "candidate"), (False, "baseline")]
    bad = tmp_path / "bad.csv"
    bad.write_text("conversation_id,behaviour,label\nc1,over_refusal,maybe\n")
    with pytest.raises(ValueError, match=r"bad.csv:2"):
        calibration.load_labels(bad)
