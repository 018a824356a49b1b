"""The notification benchmark's quick slice runs and reports every scenario."""

from __future__ import annotations

from controller.bench import notify


def test_quick_slice_reports_emit_cost_and_delivery_per_receiver() -> None:
    results = notify.run(records=8)
    by_name = {r["scenario"]: r for r in results}
    assert set(by_name) == set(notify.SCENARIOS)
    assert by_name["healthy"]["delivered"] == 8 and by_name["slow"]["delivered"] == 8
    assert by_name["down"]["delivered"] == 0 and by_name["down"]["attempts"] == 16
    assert all(r["emit_median_us"] > 0 for r in results)
    table = notify.render(results)
    assert table.splitlines()[0].startswith("receiver") and "down" in table
