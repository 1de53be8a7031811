"""The typed run record: records written before it existed still load (with final paths), the flat JSON
round-trips, one NaN rule, and records it cannot read are refused in one line."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest

from harness.analysis.tables import load_table, refusals
from harness.errors import RecordError
from harness.runs.record import RECORD_FORMAT, RunRecord
from harness.runs.rundir import RunDir

OLD = Path(__file__).resolve().parent / "fixtures" / "records_v0"


def old(kind: str) -> Path:
    return next((OLD / kind).glob("*.json"))


def test_a_record_written_before_the_type_loads_with_its_final_port_folder():
    record = RunRecord.load(next((OLD / "runs").glob("*.ported.*.json")))
    assert record.status == "ok" and record.spec["condition"] == "ported"
    assert record.result_info.metrics["0"].loss != record.result_info.metrics["0"].loss   # null -> NaN
    assert record.result_info.metrics["3"].loss == pytest.approx(0.5099729498227438)
    out = record.result_info.port["report"]["out"]
    assert out.endswith("/ported/83fab0858c5ad5fbb1bb/module") and ".tmp-" not in out
    again = RunRecord.from_dict(record.to_dict())
    assert again == RunRecord.from_dict(again.to_dict()) and again.to_dict()["format"] == RECORD_FORMAT
    assert again.to_dict()["metrics"]["0"]["loss"] is None


def test_old_failed_and_refused_records_load_and_old_run_dirs_tabulate(tmp_path):
    failed, refused = RunRecord.load(old("failed")), RunRecord.load(old("refused"))
    assert failed.status == "failed" and not failed.finished and "boom" in failed.result_info.error["message"]
    assert refused.finished and "different lineages" in refused.result_info.reason
    shutil.copytree(OLD / "runs", tmp_path / "runs")
    shutil.copytree(OLD / "refused", tmp_path / "refused" / "runs")
    table = load_table(tmp_path)
    assert sorted(table.condition) == ["host", "ported", "ported"] and set(table.budget) == {0, 3}
    assert refusals(tmp_path / "refused").reason.str.contains("different lineages").all()
    rundir = RunDir(tmp_path)
    assert all(rundir.done(p.stem, (0, 3)) for p in (tmp_path / "runs").glob("*.ported.*.json"))


@pytest.mark.parametrize("change, needle", [
    ({"format": RECORD_FORMAT + 1}, "Upgrade hubport"),
    ({"status": "maybe"}, "has status 'maybe'"),
    ({"surprise": 1}, "does not know: surprise"),
])
def test_records_it_cannot_read_are_refused_in_one_line(change, needle, tmp_path):
    data = {**RunRecord.load(old("refused")).to_dict(), **change}
    with pytest.raises(RecordError) as info:
        RunRecord.from_dict(data, where="r.json")
    assert needle in info.value.one_line() and "\n" not in info.value.one_line()
    with pytest.raises(RecordError, match="is not a run record"):
        RunRecord.from_dict({"analysis": []})


def test_nan_in_memory_is_null_on_disk_and_nan_again(tmp_path):
    record = RunRecord.load(next((OLD / "runs").glob("*.host.*.json")))
    assert math.isnan(record.result_info.metrics["0"].eval_seconds)
    rundir = RunDir(tmp_path)
    rundir.prepare({}, "c")
    rundir.write(record)
    text = (rundir.runs / f"{record.run_id}.json").read_text()
    assert "NaN" not in text and '"eval_seconds": null' in text
    back = rundir.record(record.run_id)
    assert math.isnan(back.result_info.metrics["0"].eval_seconds) and back.to_dict() == record.to_dict()
