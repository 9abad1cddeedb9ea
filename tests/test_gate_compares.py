"""`edgecv gate` compares everything it claims to (issue 23): a metric, latency or size missing or
not a number in either report fails the gate with its reason unless --allow-missing, and a report
schema version this edgecv does not know is refused (exit 2)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgecv.cli.main import app

REPORT = json.loads((Path(__file__).parent / "data" / "report_v2_flowers_raspberry-pi-4.json").read_text())


def _gate(tmp_path, baseline: dict, current: dict, *extra):
    (tmp_path / "baseline.json").write_text(json.dumps(baseline))
    (tmp_path / "current.json").write_text(json.dumps(current))
    r = CliRunner().invoke(app, ["gate", "--report", str(tmp_path / "current.json"), "--baseline",
                                 str(tmp_path / "baseline.json"), *extra])
    return r, " ".join(r.output.split())


def test_a_report_gated_against_itself_compares_every_check(tmp_path):
    r, out = _gate(tmp_path, REPORT, REPORT)
    assert r.exit_code == 0, out
    assert "6 passed, 0 failed" in out and "not compared" not in out  # accuracy, latency, size of 2 artifacts


@pytest.mark.parametrize("side", ["baseline", "current"])
@pytest.mark.parametrize("field,value,check", [
    ("metrics.accuracy", None, "accuracy"), ("metrics.accuracy", "97.9", "accuracy"),
    ("metrics.accuracy", float("nan"), "accuracy"), ("latency.p50_ms", None, "latency p50_ms"),
    ("latency", None, "latency p50_ms"), ("size_bytes", None, "size")])
def test_a_check_that_cannot_be_made_fails_the_gate_with_its_reason(tmp_path, side, field, value, check):
    broken = copy.deepcopy(REPORT)
    where = broken["artifacts"][0]
    *path, key = field.split(".")
    for p in path:
        where = where[p]
    if value is None:
        del where[key]
    else:
        where[key] = value
    baseline, current = (broken, REPORT) if side == "baseline" else (REPORT, broken)
    r, out = _gate(tmp_path, baseline, current)
    assert r.exit_code == 1, out
    assert f"int8: {check} not compared" in out and ("in the baseline" if side == "baseline" else "in the report") in out
    assert "1 failed" in out and "--allow-missing" in out
    r, out = _gate(tmp_path, baseline, current, "--allow-missing")
    assert r.exit_code == 0, out
    assert "0 failed, 1 not compared" in out and "allowed by --allow-missing" in out


@pytest.mark.parametrize("version", [99, 0, "2", None, True])
def test_an_unknown_report_schema_version_is_refused(tmp_path, version):
    future = dict(copy.deepcopy(REPORT), schema_version=version)
    for baseline, current, option in ((future, REPORT, "--baseline"), (REPORT, future, "--report")):
        r, out = _gate(tmp_path, baseline, current)
        assert r.exit_code == 2, out
        assert f"{option}" in out and f"schema_version {version!r} is not one this edgecv reads" in out
        assert "Traceback" not in r.output
