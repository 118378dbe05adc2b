"""The report shows where replay answers came from and why items failed (one line per failure class)."""

from deploysim.replay.accounting import summarize
from deploysim.report import render as report
from deploysim.schemas import ReplayRecord


def test_failure_classes_appear_in_the_html_and_markdown_report():
    records = [ReplayRecord(candidate="c", conversation_id=f"c{i}", status="ok") for i in range(97)]
    records += [
        ReplayRecord(candidate="c", conversation_id="e1", status="error", error="HTTP 401: invalid api key"),
        ReplayRecord(candidate="c", conversation_id="e2", status="error", error="timeout after 30s"),
        ReplayRecord(candidate="c", conversation_id="e3", status="error", error="timeout after 30s"),
    ]
    summary = summarize(records)
    summary["replayed"] = summary.pop("items")
    data = report.ReportData(candidate="c", model="m", baseline="production", gate=[], replay=summary)
    page, md = report.render_html(data), report.markdown(data)
    for text in (page, md):
        assert "timeout: 2 items" in text and "auth: 1 item" in text
        assert "0 of 0 answers from the cache" in text
    assert "[{" not in page  # no raw JSON dumped into the page
