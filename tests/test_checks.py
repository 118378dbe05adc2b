"""The residual-PII check reads Dagster metadata too, and fails on a value left in clear."""

import json
import warnings
from pathlib import Path

import dagster as dg

from deploysim import pipeline


def test_metadata_texts_feed_the_residual_pii_scan():
    warnings.simplefilter("ignore")
    from orchestration.checks import latest_metadata

    with dg.instance_for_test() as inst:
        inst.add_dynamic_partitions("candidates", ["c1"])
        inst.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key="grade", partition="c1", metadata={"note": "escalate to jane.doe@example.com", "n": 3}
            )
        )
        inst.report_runless_asset_event(dg.AssetMaterialization(asset_key="sample", metadata={"sampled": 10}))
        meta = latest_metadata(inst, "c1")
    assert set(meta) == {"grade", "sample"}
    found = pipeline.residual_pii([], metadata=meta)
    assert found["hits"] == 1 and found["by_type"] == {"EMAIL": 1} and found["by_file"] == {"metadata:grade": 1}
    assert "jane.doe" not in str(found)
    assert pipeline.residual_pii([], ["escalate to <EMAIL_1>", "10"])["hits"] == 0


def test_table_metadata_feeds_the_residual_pii_scan():
    """A table's records are named tuples that refuse iteration: the scan reads them by field."""
    warnings.simplefilter("ignore")
    from deploysim.report.tables import Column, Table
    from orchestration.metadata import table

    rows = [{"failure": "mail jane.doe@example.com", "count": 2}]
    t = table(Table([Column("failure"), Column("count", "int")], rows))
    found = pipeline.residual_pii([], metadata={"replay": {"failures": t}})
    assert found["hits"] == 1 and found["by_file"] == {"metadata:replay": 1}


def _pii_record() -> dict:
    return {
        "id": "sess-mia@example.com",
        "topic": "refund for mia@example.com",
        "surface": "kiosk 10.0.0.7",
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "lookup_order",
                    "description": "Find orders, e.g. for jane.doe@example.com.",
                    "parameters": {
                        "type": "object",
                        "properties": {"email": {"type": "string", "default": "bob@example.org"}},
                    },
                },
            }
        ],
        "messages": [{"role": "user", "content": "Where is my order?"}],
    }


def _check_evaluations(result: dg.ExecuteInProcessResult) -> list:
    return [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]


def test_traffic_is_not_blocked_by_personal_data_outside_messages(tmp_path, monkeypatch):
    """Issue 15/3: a tool description with an example email no longer blocks every run."""
    warnings.simplefilter("ignore")
    monkeypatch.setenv("DEPLOYSIM_HOME", str(tmp_path))
    monkeypatch.setenv("DEPLOYSIM_REDACT_NER", "0")

    from assets.ingest import ingest
    from assets.redact import redact
    from deploysim.days import file_day
    from orchestration.checks import redact_has_no_residual_pii
    from orchestration.resources import Settings

    logs = tmp_path / "logs.jsonl"
    logs.write_text(json.dumps(_pii_record()) + "\n")
    with dg.instance_for_test() as inst:
        res = dg.materialize(
            [ingest, redact, redact_has_no_residual_pii],
            instance=inst,
            raise_on_error=False,
            resources={"settings": Settings(logs=str(logs))},
            partition_key=file_day(logs),  # the record has no timestamp: the day of its file
        )
    (ev,) = _check_evaluations(res)
    assert ev.passed, ev.metadata
    meta = res.asset_materializations_for_node("redact")[0].metadata
    text = Path(meta["path"].value).read_bytes()  # the version redact just wrote
    assert b"example.com" not in text and b"example.org" not in text and b"10.0.0.7" not in text
    assert meta["fields_changed"].value == {"conversation_id": 1, "surface": 1, "tools": 1, "topic": 1}


def test_failing_redact_check_names_the_place_and_quarantines_the_file(tmp_path, monkeypatch):
    """A redacted file with personal data left in clear (as an older redact wrote it): the check names
    record, field and type (never the value) and moves the file into the restricted zone."""
    warnings.simplefilter("ignore")
    monkeypatch.setenv("DEPLOYSIM_HOME", str(tmp_path))
    from assets.redact import redact
    from deploysim import lake
    from deploysim.schemas import Conversation, conversation_to_row
    from orchestration.checks import redact_has_no_residual_pii
    from orchestration.resources import Settings

    rec = _pii_record()
    conv = Conversation(conversation_id="c7", topic=rec["topic"], tools=rec["tools"], messages=rec["messages"])
    path = lake.lake_path("redacted")
    lake.write_rows(path, [conversation_to_row(conv)])
    with dg.instance_for_test() as inst:
        res = dg.materialize(
            [redact, redact_has_no_residual_pii],
            instance=inst,
            raise_on_error=False,
            selection=dg.AssetSelection.checks(redact_has_no_residual_pii),
            resources={"settings": Settings(logs=str(tmp_path))},
        )
    (ev,) = _check_evaluations(res)
    assert not ev.passed
    places = ev.metadata["places"].value
    assert {(p["record"], p["field"], p["type"]) for p in places} == {
        ("c7", "topic", "EMAIL"),
        ("c7", "tools[0].function.description", "EMAIL"),
        ("c7", "tools[0].function.parameters.properties.email.default", "EMAIL"),
    }
    assert "record c7" in ev.description and "field topic" in ev.description and "EMAIL" in ev.description
    assert not path.exists()
    moved = list((tmp_path / "raw" / "quarantine").glob("redacted-*.parquet"))
    assert len(moved) == 1 and ev.metadata["quarantined"].value == str(moved[0])
    assert str(moved[0]) in ev.description
    shown = ev.description + json.dumps({k: str(v.value) for k, v in ev.metadata.items()})
    assert "mia@" not in shown and "jane.doe" not in shown and "bob@" not in shown
    assert pipeline.residual_pii([], [shown])["hits"] == 0
