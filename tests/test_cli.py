"""Command-line behaviour that needs no pipeline run."""
import pytest

from deploysim import cli, lake


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOYSIM_HOME", str(tmp_path))
    return tmp_path


def test_labels_import_and_bad_row(home, capsys):
    good = home / "labels.csv"
    good.write_text("conversation_id,behaviour,label\nc1,over_refusal,1\nc2,over_refusal,0\n")
    assert cli.main(["labels", str(good)]) == cli.EXIT_PASS
    from deploysim import pipeline

    rows = lake.read_rows(pipeline.labels_path())
    assert sorted((r["conversation_id"], bool(r["label"])) for r in rows) == [("c1", True), ("c2", False)]
    bad = home / "bad.csv"
    bad.write_text("conversation_id,behaviour,label\nc1,over_refusal,maybe\n")
    assert cli.main(["labels", str(bad)]) == cli.EXIT_USAGE
    assert "bad.csv:2" in capsys.readouterr().out


def test_run_unknown_candidate_fails_fast(home, capsys):
    assert cli.main(["run", "ghost"]) == cli.EXIT_USAGE
    assert "unknown candidate 'ghost'" in capsys.readouterr().out


def test_candidate_name_validated(home, capsys):
    code = cli.main(["candidate", "add", "bad name!", "--base-url", "http://127.0.0.1:1/v1", "--model", "m"])
    assert code == cli.EXIT_USAGE
    assert "candidate name" in capsys.readouterr().out
    code = cli.main(["candidate", "add", "ok", "--base-url", "localhost:8000/v1", "--model", "m"])
    assert code == cli.EXIT_USAGE
    out = capsys.readouterr().out
    assert "error: base_url: base_url must be an http:// or https:// URL" in out and "pydantic" not in out


def test_run_labels_picks_the_candidates_labels(home):
    from deploysim import pipeline

    src = home / "l.jsonl"
    src.write_text('{"conversation_id": "c1", "behaviour": "pii_leakage", "label": true}\n'
                   '{"conversation_id": "c2", "behaviour": "pii_leakage", "label": true, "candidate": "other"}\n'
                   '{"conversation_id": "c3", "behaviour": "pii_leakage", "label": false, "system": "baseline"}\n')
    got = pipeline.run_labels("steady", str(src))
    assert got["labels"] == 2 and got["per_behaviour"] == {"pii_leakage/baseline": 1, "pii_leakage/candidate": 1}
    assert "none" in pipeline.run_labels("steady", "")["source"]  # nothing imported: no labels
    assert lake.read_rows(pipeline.labels_path("steady")) == []
    assert cli.main(["labels", str(src)]) == cli.EXIT_PASS
    again = pipeline.run_labels("steady", "")
    assert again["labels"] == 2 and "imported" in again["source"]
    rows = lake.read_rows(pipeline.labels_path("steady"))
    assert sorted(r["conversation_id"] for r in rows) == ["c1", "c3"] and {r["candidate"] for r in rows} == {"steady"}
