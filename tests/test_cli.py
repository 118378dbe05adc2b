"""Command-line behaviour that needs no pipeline run."""

import pytest

from deploysim import lake
from orchestration import cli


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
    assert cli.main(["labels", str(bad)]) == cli.EXIT_ERROR
    assert "bad.csv:2" in capsys.readouterr().out


def test_run_unknown_candidate_fails_fast(home, capsys):
    assert cli.main(["run", "ghost"]) == cli.EXIT_ERROR
    assert "unknown candidate 'ghost'" in capsys.readouterr().out


def test_candidate_name_validated(home, capsys):
    code = cli.main(["candidate", "add", "bad name!", "--base-url", "http://127.0.0.1:1/v1", "--model", "m"])
    assert code == cli.EXIT_ERROR
    assert "candidate name" in capsys.readouterr().out
    code = cli.main(["candidate", "add", "ok", "--base-url", "localhost:8000/v1", "--model", "m"])
    assert code == cli.EXIT_ERROR
    out = capsys.readouterr().out
    assert "error: base_url: base_url must be an http:// or https:// URL" in out and "pydantic" not in out


def test_run_labels_picks_the_candidates_labels(home):
    from deploysim import pipeline

    src = home / "l.jsonl"
    src.write_text(
        '{"conversation_id": "c1", "behaviour": "pii_leakage", "label": true}\n'
        '{"conversation_id": "c2", "behaviour": "pii_leakage", "label": true, "candidate": "other"}\n'
        '{"conversation_id": "c3", "behaviour": "pii_leakage", "label": false, "system": "baseline"}\n'
    )
    got = pipeline.run_labels("steady", str(src))
    assert got["labels"] == 2 and got["per_behaviour"] == {"pii_leakage/baseline": 1, "pii_leakage/candidate": 1}
    assert "none" in pipeline.run_labels("steady", "")["source"]  # nothing imported: no labels
    assert lake.read_rows(pipeline.labels_path("steady")) == []
    assert cli.main(["labels", str(src)]) == cli.EXIT_PASS
    again = pipeline.run_labels("steady", "")
    assert again["labels"] == 2 and "imported" in again["source"]
    rows = lake.read_rows(pipeline.labels_path("steady"))
    assert sorted(r["conversation_id"] for r in rows) == ["c1", "c3"] and {r["candidate"] for r in rows} == {"steady"}


KEY = "sk-proj-9fJ2kQ7vX1mN4bT8rW3yZ6aP0cD5eH"


@pytest.mark.parametrize(
    "extra, field",
    [
        (["--api-key-env", KEY], "looks like a key"),
        (["--api-key-env", "AIzaSyD3kd83KdlsQ0x9d8sdfkJdqq"], "looks like a key"),
        (["--api-key-env", "MY KEY"], "environment variable name"),
        (["--temperature", "nan"], "temperature"),
        (["--price-in", "inf"], "price_prompt_per_mtok"),
        (["--price-out", "-1"], "price_completion_per_mtok"),
        (["--rpm", "-5"], "requests_per_minute"),
        (["--tpm", "0"], "tokens_per_minute"),
        (["--max-steps", "0"], "max_steps"),
        (["--max-tokens", "0"], "max_tokens"),
        (["--concurrency", "0"], "concurrency"),
        (["--timeout-s", "0"], "timeout_s"),
        (["--max-retries", "-1"], "max_retries"),
        (["--baseline", "me"], "its own baseline"),
    ],
)
def test_candidate_add_validates_every_field_and_never_echoes_a_key(home, capsys, extra, field):
    code = cli.main(["candidate", "add", "me", "--base-url", "http://127.0.0.1:1/v1", "--model", "m", *extra])
    out = capsys.readouterr()
    assert code == cli.EXIT_ERROR and field in out.out
    assert KEY not in out.out + out.err and "Traceback" not in out.out + out.err
    assert not (home / "candidates.json").exists()  # nothing stored


def test_a_key_stored_by_an_older_version_leaves_the_registry_unprinted(home, capsys):
    (home / "candidates.json").write_text(
        '{"candidates": {"old": {"name": "old", "base_url": "http://127.0.0.1:1/v1", "model": "m", '
        f'"api_key_env": "{KEY}"}}, '
        '"ok": {"name": "ok", "base_url": "http://127.0.0.1:1/v1", "model": "m"}}}'.replace('}}, "ok"', '}, "ok"')
    )
    assert cli.main(["candidate", "list"]) == cli.EXIT_PASS
    out = capsys.readouterr().out
    assert "'old' was removed" in out and "ok\tm" in out and KEY not in out
    assert KEY not in (home / "candidates.json").read_text()  # the secret left the disk
    assert cli.main(["run", "old"]) == cli.EXIT_ERROR  # gone: it has to be registered again
    assert KEY not in capsys.readouterr().out


def test_bad_input_gets_one_line_and_exit_2_not_a_traceback(home, capsys, monkeypatch):
    logs = home / "logs.jsonl"
    logs.write_text(
        '{"id": "c1", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
    )
    cases = [
        ["labels", str(home)],  # a directory, not a file
        ["ingest", str(logs), "--quiet", "--quarantine", str(home)],  # quarantine into a directory
        ["redact", str(logs), str(logs / "out.jsonl"), "--quiet", "--no-ner"],  # under a file: impossible
    ]
    for args in cases:
        code = cli.main(args)
        out = capsys.readouterr()
        text = out.out + out.err
        assert code == cli.EXIT_ERROR, (args, text)
        assert "Traceback" not in text and len([ln for ln in text.splitlines() if ln.startswith("error")]) == 1, text
    cli.main(["candidate", "add", "c", "--base-url", "http://127.0.0.1:1/v1", "--model", "m"])
    capsys.readouterr()
    monkeypatch.setenv("DEPLOYSIM_SAMPLE_SIZE", "a thousand")
    assert cli.main(["run", "c"]) == cli.EXIT_ERROR
    assert "sample_size" in capsys.readouterr().out


def test_verbose_shows_the_traceback(home, capsys):
    assert cli.main(["--verbose", "labels", str(home)]) == cli.EXIT_ERROR
    assert "Traceback" in capsys.readouterr().err
