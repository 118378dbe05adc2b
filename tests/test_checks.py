"""The residual-PII check reads Dagster metadata too, and fails on a value left in clear."""
import warnings

import dagster as dg

from deploysim import pipeline


def test_metadata_texts_feed_the_residual_pii_scan():
    warnings.simplefilter("ignore")
    from orchestration.checks import latest_metadata

    with dg.instance_for_test() as inst:
        inst.add_dynamic_partitions("candidates", ["c1"])
        inst.report_runless_asset_event(dg.AssetMaterialization(
            asset_key="grade", partition="c1", metadata={"note": "escalate to jane.doe@example.com", "n": 3}))
        inst.report_runless_asset_event(dg.AssetMaterialization(asset_key="sample", metadata={"sampled": 10}))
        meta = latest_metadata(inst, "c1")
    assert set(meta) == {"grade", "sample"}
    found = pipeline.residual_pii([], metadata=meta)
    assert found["hits"] == 1 and found["by_type"] == {"EMAIL": 1} and found["by_file"] == {"metadata:grade": 1}
    assert "jane.doe" not in str(found)
    assert pipeline.residual_pii([], ["escalate to <EMAIL_1>", "10"])["hits"] == 0
