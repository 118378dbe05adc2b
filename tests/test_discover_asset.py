"""The discover asset materialised by Dagster on a small data directory: demo logs, the reference endpoint
over HTTP, the candidate's replay and grades, then its clusters in the lake, the UI's Markdown table and
the residual-PII check; `deploysim discover show` and `promote` on them."""

from __future__ import annotations

import json

import pytest

from deploysim import discover, lake, pipeline
from deploysim.grading import taxonomy


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import dagster as dg

    from deploysim import settings
    from deploysim.candidates import Candidate, register
    from deploysim_testkit.cli_home import small_home
    from orchestration import runner

    home = tmp_path_factory.mktemp("discover")
    with small_home(home) as server:
        register(Candidate(name="regressing", base_url=server.base_url, model="regressing"))
        inst = dg.DagsterInstance.ephemeral()
        s = settings.load()
        assert runner.run_traffic(inst, settings=s).success
        runner.add_partition(inst, "regressing")
        res = runner._materialize(
            inst, dg.AssetSelection.assets("replay", "grade", "discover"), "regressing", False, settings=s
        )
        yield {"home": home, "inst": inst, "res": res, "server": server}


def test_discover_is_materialised_with_clusters_and_a_markdown_table(run):
    from assets.common import recorded

    assert run["res"].success
    meta = recorded(run["inst"], "discover", "regressing")
    assert meta["upstream"]["replay"] == lake.latest_version("replay", "regressing")
    assert meta["version"] == lake.latest_version("discover", "regressing")
    assert meta["summary"].startswith("| cluster | name | judge | size |")
    clusters = discover.load_clusters("regressing")
    assert meta["clusters"] == len(clusters) >= 1
    assert meta["clustered"] <= meta["dissimilar"] <= meta["compared"] <= 60
    for c in clusters:
        assert c["size"] == len(c["conversation_ids"]) and 0 < c["ci_low"] <= c["share"] <= c["ci_high"] < 1
        assert f"| {c['cluster']} | {c['name']} | no judge (named by its terms) | {c['size']} |" in meta["summary"]
        assert c["named_by"] == "terms" and c["concerning"] is None
    checks = {e.check_name: e.passed for e in run["res"].get_asset_check_evaluations()}
    assert checks["discover_has_no_residual_pii"] is True


def test_examples_are_the_redacted_texts(run):
    turns = pipeline.load_turns("regressing")
    convs = {c.conversation_id: c for c in pipeline.load_redacted()}
    shown = [e for c in discover.load_clusters("regressing") for e in c["examples"]]
    assert shown
    flagged = {
        g["conversation_id"]
        for g in lake.read_rows(lake.current("grade", "regressing"))
        if g["system"] == "candidate" and g["flagged"]
    }
    for e in shown:
        cid = e["conversation_id"]
        assert cid not in flagged  # known failures are the taxonomy's, not discovered ones
        said = " ".join(" ".join((m.content or "").split()) for m in turns[cid])
        assert e["candidate"].rstrip("…") in said  # the redacted replay output, never a raw text
        asked = " ".join((convs[cid].messages[convs[cid].last_user_index()].content or "").split())
        assert asked.startswith(e["request"].rstrip("…"))


def test_show_and_promote_from_the_cli(run, capsys):
    from orchestration import cli

    capsys.readouterr()
    assert cli.main(["discover", "show", "regressing", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [c["cluster"] for c in shown] == [c["cluster"] for c in discover.load_clusters("regressing")]
    assert cli.main(["discover", "promote", "regressing", "1", "--id", "new_mode", "--max-rate", "0.02"]) == 0
    tax = taxonomy.load(run["home"] / "taxonomy.yaml")
    assert tax.get("new_mode").gate is False and tax.get("new_mode").graders == ["judge.new_mode"]
    assert cli.main(["discover", "promote", "regressing", "99", "--id", "other_mode"]) == cli.EXIT_ERROR
    assert cli.main(["discover", "show", "nobody"]) == cli.EXIT_ERROR


def test_a_configured_judge_names_the_clusters(run, monkeypatch):
    import dagster as dg

    from assets.common import recorded
    from deploysim import settings
    from orchestration import runner

    without = lake.latest_version("discover", "regressing")
    before = {c["cluster"]: c for c in discover.load_clusters("regressing")}
    monkeypatch.setenv("DEPLOYSIM_JUDGE_MODEL", "judge-accurate")
    monkeypatch.setenv("DEPLOYSIM_JUDGE_BASE_URL", run["server"].base_url)
    only = dg.AssetSelection.assets("discover")
    res = runner._materialize(run["inst"], only, "regressing", False, settings=settings.load())
    assert res.success
    meta = recorded(run["inst"], "discover", "regressing")
    assert meta["version"] != without  # the judge's naming is part of the version
    clusters = discover.load_clusters("regressing")
    assert meta["named_by_judge"] == len(clusters) == len(before)
    for c in clusters:
        assert c["named_by"] == "judge judge-accurate" and isinstance(c["concerning"], bool)
        assert c["conversation_ids"] == before[c["cluster"]]["conversation_ids"]  # same clusters, new names
        assert c["name"] != before[c["cluster"]]["name"] and "\n" not in c["name"]
        assert f"| {c['cluster']} | {c['name']} |" in meta["summary"]
    assert any(c["name"].startswith("Candidate ") for c in clusters)  # read from what the answers did
