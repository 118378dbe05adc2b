"""Human labels (1, 0, na) where the user grades logs: `deploysim grade LOGS --labels --rates` end to end
through the real CLI on the demo generator's logs, the label file's errors, and na labels through the
pipeline's labels step."""

import json

import pytest

from deploysim import lake
from deploysim.grading import calibration
from deploysim_testkit import demo
from orchestration import cli

LABELLED = ("harmful_compliance", "over_refusal", "injection_following")
RATE_KEYS = {"flagged", "applicable", "rate", "ci_low", "ci_high", "corrected"}


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOYSIM_HOME", str(tmp_path / "home"))
    return tmp_path


@pytest.fixture()
def logs(home):
    return demo.generate(home / "demo", n=240, seed=3)


def truth_labels(truth_path, every: int = 3) -> list[tuple[str, str, str]]:
    """Labels from the demo's recorded truth (not from the graders) for every `every`-th conversation."""
    out = []
    for i, line in enumerate(truth_path.read_text().splitlines()):
        if i % every:
            continue
        t = json.loads(line)
        for beh, applies, present in (
            ("harmful_compliance", t["disallowed"], t["baseline_complied"]),
            ("over_refusal", not t["disallowed"], t["baseline_refused"]),
            ("injection_following", t["injected"], t["baseline_followed_injection"]),
        ):
            out.append((t["id"], beh, str(int(present)) if applies else "na"))
    return out


def test_grade_with_labels_writes_corrected_rates_and_a_calibration_table(home, logs, capsys):
    out, rates = home / "grades.jsonl", home / "rates.json"
    assert cli.main(["grade", str(logs.logs), "--out", str(out), "--rates", str(rates)]) == cli.EXIT_PASS
    plain = json.loads(rates.read_text())
    assert list(plain) == ["behaviours"]
    assert all(set(r) == RATE_KEYS and r["corrected"] is None for r in plain["behaviours"].values())

    labels = truth_labels(logs.truth)
    assert any(v == "na" for *_, v in labels) and any(v == "1" for *_, v in labels)
    path = home / "labels.csv"
    path.write_text(
        "conversation_id,behaviour,label\n"
        + "".join(f"{c},{b},{v}\n" for c, b, v in labels)
        + "not-in-the-logs,over_refusal,1\n"
    )
    capsys.readouterr()
    code = cli.main(["grade", str(logs.logs), "--out", str(out), "--rates", str(rates), "--labels", str(path)])
    assert code == cli.EXIT_PASS
    printed = capsys.readouterr()
    assert "1 labelled conversations are not among the graded ones" in printed.err

    got = json.loads(rates.read_text())["behaviours"]
    grades = [json.loads(line) for line in out.read_text().splitlines()]
    truth = [json.loads(line) for line in logs.truth.read_text().splitlines()]
    for beh, r in got.items():
        assert set(r) == RATE_KEYS
        assert r["flagged"] == plain["behaviours"][beh]["flagged"]  # the graders' rates are unchanged
        if beh not in LABELLED:
            assert r["corrected"] is None
            continue
        c = r["corrected"]
        assert set(c) == {"rate", "ci_low", "ci_high", "labels"}
        assert c["labels"] == sum(b == beh for _, b, _ in labels)  # na labels count, the unknown one does not
        assert 0 <= c["ci_low"] <= c["rate"] <= c["ci_high"] <= 1 and c["ci_high"] > c["ci_low"]
    # over_refusal is common enough for the corrected interval to hold the rate over every conversation's truth
    app = [t for t in truth if not t["disallowed"]]
    all_truth = sum(t["baseline_refused"] for t in app) / len(app)
    c = got["over_refusal"]["corrected"]
    assert c["ci_low"] <= all_truth <= c["ci_high"], (c, all_truth)

    # the calibration table, checked against counts made here from the written grades
    lab = {(cid, b): v for cid, b, v in labels}
    for beh in LABELLED:
        [primary] = {g["grader"] for g in grades if g["behaviour"] == beh and g["grader"].startswith("rule.")}
        pairs = [
            (g["applicable"] and g["flagged"], lab[(g["conversation_id"], beh)] == "1")
            for g in grades
            if g["grader"] == primary and lab.get((g["conversation_id"], beh), "na") != "na"
        ]
        a = calibration.agreement("", pairs)
        domain = [
            g["applicable"] == (lab[(g["conversation_id"], beh)] != "na")
            for g in grades
            if g["grader"] == primary and (g["conversation_id"], beh) in lab
        ]
        [row] = [line for line in printed.out.splitlines() if line.startswith(beh) and primary in line]
        fields = row.split()
        assert int(fields[2]) == a.n and fields[5] == f"{a.kappa:.2f}"
        assert int(fields[6]) == len(domain) and fields[7] == f"{sum(domain) / len(domain):.1%}"


def test_jsonl_null_labels_equal_csv_na(home, logs, capsys):
    labels = truth_labels(logs.truth, every=4)
    csv_path, jsonl_path = home / "l.csv", home / "l.jsonl"
    csv_path.write_text("conversation_id,behaviour,label\n" + "".join(f"{c},{b},{v}\n" for c, b, v in labels))
    jsonl_path.write_text(
        "".join(
            json.dumps({"conversation_id": c, "behaviour": b, "label": None if v == "na" else int(v)}) + "\n"
            for c, b, v in labels
        )
    )
    got = []
    for path in (csv_path, jsonl_path):
        rates = home / f"rates-{path.suffix[1:]}.json"
        args = ["grade", str(logs.logs), "--out", str(home / "g.jsonl"), "--labels", str(path), "--rates", str(rates)]
        assert cli.main(args) == cli.EXIT_PASS
        got.append(json.loads(rates.read_text()))
    assert got[0] == got[1] and got[0]["behaviours"]["over_refusal"]["corrected"] is not None


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "conversation_id,behaviour,label\ndemo-00000,over_refusal,maybe\n",
            "l.csv:2: label: label 'maybe' is not 1, 0 or na",
        ),
        ("conversation_id,behaviour,label\ndemo-00000,over_refusal,\n", "l.csv:2: empty label"),
        ("conversation_id,behaviour\ndemo-00000,over_refusal\n", "missing column(s) label"),
        (
            "conversation_id,behaviour,label\ndemo-00000,over_refusel,1\n",
            "behaviours the taxonomy does not have: over_refusel",
        ),
        ("conversation_id,behaviour,label\ndemo-00000,over_refusal,1\ndemo-00000,over_refusal,na\n", "labelled twice"),
    ],
)
def test_bad_labels_stop_before_anything_is_written(home, logs, capsys, text, message):
    path = home / "l.csv"
    path.write_text(text)
    out, rates = home / "out" / "g.jsonl", home / "out" / "rates.json"
    code = cli.main(["grade", str(logs.logs), "--out", str(out), "--labels", str(path), "--rates", str(rates)])
    assert code == cli.EXIT_ERROR
    assert message in capsys.readouterr().out
    assert not out.exists() and not rates.exists()


def test_jsonl_label_errors_name_the_line(tmp_path):
    path = tmp_path / "l.jsonl"
    path.write_text(
        '{"conversation_id": "a", "behaviour": "pii_leakage", "label": 1}\n\n'
        '{"conversation_id": "b", "behaviour": "pii_leakage"}\n'
    )
    with pytest.raises(ValueError, match=r"l.jsonl:3: no label"):
        calibration.load_labels(path)
    path.write_text('{"conversation_id": "a", "behaviour": "pii_leakage", "label": 2}\n')
    with pytest.raises(ValueError, match=r"l.jsonl:1: label"):
        calibration.load_labels(path)


def test_na_labels_through_the_labels_step_and_the_estimate(home):
    """Rows with "label": None (the demo's reviewers write them for behaviours that do not apply) are
    stored as na and read by the estimate as outside the humans' domain."""
    from deploysim import pipeline
    from deploysim.estimation import stats

    src = home / "l.jsonl"
    rows = [
        {"conversation_id": f"c{i}", "behaviour": "pii_leakage", "label": None if i % 2 else i % 4 == 0}
        for i in range(8)
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = pipeline.run_labels("steady", str(src))
    assert got["labels"] == 8 and got["not_applicable"] == 4
    stored = sorted(lake.read_rows(pipeline.labels_path("steady")), key=lambda r: int(r["conversation_id"][1:]))
    assert [r["label"] for r in stored] == [True, None, False, None, True, None, False, None]
    assert [r["applies"] for r in stored] == [True, False] * 4
    sample = [{"conversation_id": f"c{i}", "stratum": "all", "inclusion_prob": 0.5} for i in range(8)]
    grades = [
        {
            "conversation_id": f"c{i}",
            "system": s,
            "behaviour": "pii_leakage",
            "grader": "g",
            "applicable": True,
            "flagged": True,
        }
        for i in range(8)
        for s in ("candidate", "baseline")
    ]
    [e] = stats.estimate("steady", sample, grades, labels=stored)
    assert e.rate == 1.0 and e.n_labelled == 8
    assert e.ppi_rate == pytest.approx(0.5)  # present in 2 of the 4 conversations it applies to
