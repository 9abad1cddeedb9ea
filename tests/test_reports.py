"""report.json (schema), JUnit XML, Markdown and the self-contained HTML report; merge and regression gate."""

import copy
import json
import shutil
import subprocess
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from rich.console import Console
from typer.testing import CliRunner

from edgecv.orchestrator.runner import run_build
from edgecv.cli.main import app

QUIET = Console(file=open("/dev/null", "w"))
SCHEMA = Path(__file__).resolve().parents[1] / "edgecv" / "report" / "report.schema.json"


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_recipe_path):
    out = tmp_path_factory.mktemp("reports")
    target = out / "strict.yaml"
    target.write_text("description: a target with a gate that must fail\nruntime: {threads: 1, batch: [1, 2]}\n"
                      "artifacts:\n  - {name: int8, format: tflite, precision: int8}\n  - {name: fp32, format: tflite}\n"
                      "gates: {accuracy_drop_max: 5.0, size_mb_max: 0.05}\n")
    result = run_build(tiny_recipe_path, [str(target)], out, console=QUIET)
    return out / "strict", result


def test_report_matches_its_json_schema(built):
    jsonschema = pytest.importorskip("jsonschema")
    report = json.loads((built[0] / "report.json").read_text())
    jsonschema.validate(report, json.loads(SCHEMA.read_text()))
    assert report["schema_version"] == 2


def test_report_has_metrics_latency_sizes_and_reproducibility_facts(built):
    report = json.loads((built[0] / "report.json").read_text())
    int8 = report["artifacts"][0]
    assert set(int8["metrics"]) >= {"accuracy", "top5_accuracy", "per_class_recall", "confusion_matrix"}
    assert set(int8["agreement"]) == {"top1_agreement"}
    assert set(int8["outputs"]["probabilities"]) >= {"max_abs_error", "mean_abs_error", "cosine_similarity", "snr_db"}
    assert [b["batch"] for b in int8["latency_by_batch"]] == [1, 2]
    assert all(b["p50_ms"] <= b["p90_ms"] <= b["p99_ms"] for b in int8["latency_by_batch"])
    assert int8["load_seconds"] > 0 and int8["memory"]["peak_rss_mb"] > 0
    assert 0 < int8["gzip_bytes"] < int8["size_bytes"]
    assert int8["runtime"]["threads"] == 1
    assert report["calibration"]["sha256"] and report["environment"]["libraries"]["ai-edge-litert"]
    ref = built[0].parent / "reference.npz"
    import hashlib

    assert hashlib.sha256(ref.read_bytes()).hexdigest() == report["reference"]["sha256"]


def test_report_carries_intervals_and_a_new_confidence_rejudges_the_cached_validation(built, tiny_recipe_path):
    report = json.loads((built[0] / "report.json").read_text())
    int8, n = report["artifacts"][0], len(report["data"]["eval_images"])
    assert len(int8["sample_scores"]["accuracy"]) == n and report["reference"]["intervals"]["accuracy"]["n"] == n
    wide = int8["delta_intervals"]["accuracy"]
    assert wide["confidence"] == 0.95 and set(wide["discordant"]) == {"gained", "lost"}
    out = built[0].parent
    target = out / "strict80.yaml"  # the same artifacts and runtime: its validations are cached
    target.write_text("description: the same artifacts judged at 80 %\nruntime: {threads: 1, batch: [1, 2]}\n"
                      "artifacts:\n  - {name: int8, format: tflite, precision: int8}\n  - {name: fp32, format: tflite}\n"
                      "gates: {confidence: 0.8, accuracy_drop_max_significant: 5.0}\n")
    run_build(tiny_recipe_path, [str(target)], out, console=QUIET)
    r80 = json.loads((out / "strict80" / "report.json").read_text())
    assert all(s["hit"] for s in r80["stages"] if s["stage"] == "validate")
    narrow = r80["artifacts"][0]["delta_intervals"]["accuracy"]
    assert narrow["confidence"] == 0.8 and wide["low"] <= narrow["low"] <= narrow["high"] <= wide["high"]
    gate = r80["artifacts"][0]["gates"][0]
    assert gate["gate"] == "accuracy_drop_max_significant" and gate["judged_on"] == "interval low"
    assert gate["confidence"] == 0.8


def test_junit_has_a_case_per_artifact_and_gate(built):
    root = ET.parse(built[0] / "junit.xml").getroot()
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == 2 + 2 * 2  # build + two gates, for each of two artifacts
    failures = [c for c in cases if c.find("failure") is not None]
    assert {c.get("classname").split(".")[-1] + "/" + c.get("name") for c in failures} == {"fp32/size_mb_max"}
    assert suite.get("failures") == "1" and suite.get("tests") == "6"


def test_markdown_summary(built):
    md = (built[0] / "summary.md").read_text()
    assert md.startswith("## ❌ edgecv strict: 1 of 2 artifacts failed — fp32: size_mb_max")
    assert "| int8 | tflite | int8 | ✅ ok |" in md and "| fp32 | tflite | fp32 | ❌ gate failed |" in md
    assert "gate failed: fp32: size_mb_max FAILED" in md


def test_html_is_self_contained_with_plots(built):
    page = (built[0] / "report.html").read_text()
    for fig in ("accuracy_vs_latency", "per_class_delta", "latency_distribution"):
        assert f'<figure id="{fig}"><svg' in page
    assert "<script" not in page and "<link" not in page and 'src="http' not in page


def test_html_renders_in_headless_chromium(built, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no headless Chromium installed (apt-get install chromium); the HTML checks above still ran")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"]
    page = (built[0] / "report.html").as_uri()
    dom = subprocess.run([browser, *flags, "--dump-dom", page], capture_output=True, text=True, timeout=120).stdout
    assert dom.count("<svg") >= 3 and "accuracy vs latency" in dom
    shot = tmp_path / "report.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1400,1800", page],
                   capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 20_000  # a page with plots, not a blank one


def test_too_tight_gate_fails_the_build(built):
    _, result = built
    assert result.exit_code == 1
    assert any("fp32: size_mb_max FAILED" in m for m in result.outcomes[0].messages)


def test_regression_gate_catches_injected_regressions(built, tmp_path):
    base = built[0] / "report.json"
    runner = CliRunner()
    assert runner.invoke(app, ["gate", "--report", str(base), "--baseline", str(tmp_path / "none.json")]).exit_code == 2
    r = runner.invoke(app, ["gate", "--report", str(base), "--baseline", str(tmp_path / "b.json"), "--update-baseline"])
    assert r.exit_code == 0 and (tmp_path / "b.json").is_file()
    assert runner.invoke(app, ["gate", "--report", str(base), "--baseline", str(tmp_path / "b.json")]).exit_code == 0

    worse = json.loads(base.read_text())
    worse["artifacts"][0]["metrics"]["accuracy"] -= 2.0
    worse["artifacts"][1]["latency"]["p50_ms"] *= 1.5
    worse["artifacts"][1]["size_bytes"] = int(worse["artifacts"][1]["size_bytes"] * 1.2)
    (tmp_path / "worse.json").write_text(json.dumps(worse))
    r = runner.invoke(app, ["gate", "--report", str(tmp_path / "worse.json"), "--baseline", str(tmp_path / "b.json")])
    assert r.exit_code == 1
    assert "int8: accuracy" in r.stdout and "fp32: latency p50_ms" in r.stdout and "fp32: size" in r.stdout
    assert "3 failed" in r.stdout
    r = runner.invoke(app, ["gate", "--report", str(tmp_path / "worse.json"), "--baseline", str(tmp_path / "b.json"),
                            "--max-accuracy-drop", "3", "--max-latency-growth", "60", "--max-size-growth", "25"])
    assert r.exit_code == 0

    missing = copy.deepcopy(worse)
    missing["artifacts"] = missing["artifacts"][:1]
    (tmp_path / "missing.json").write_text(json.dumps(missing))
    r = runner.invoke(app, ["gate", "--report", str(tmp_path / "missing.json"), "--baseline", str(tmp_path / "b.json"),
                            "--max-accuracy-drop", "3"])
    assert r.exit_code == 1 and "fp32: in the baseline but missing" in r.stdout


def test_merge_device_results_rechecks_gates(built, tmp_path):
    from edgecv.validate.bench import bench

    out_dir = built[0]
    copy_dir = tmp_path / "strict"
    shutil.copytree(out_dir, copy_dir)
    report = copy_dir / "report.json"
    res = bench(copy_dir / "tiny_int8.tflite", None, True, 1, [1], min_runs=5, min_seconds=0)
    res["latency"]["p90_ms"] = 999.0  # as if the device were slow
    (tmp_path / "dev.json").write_text(json.dumps(res))
    data = json.loads(report.read_text())
    data["target"]["gates"]["latency_p90_ms_max"] = 50.0
    report.write_text(json.dumps(data))
    r = CliRunner().invoke(app, ["report", str(report), "--merge", str(tmp_path / "dev.json")])
    assert r.exit_code == 1
    merged = json.loads(report.read_text())
    int8 = merged["artifacts"][0]
    assert int8["device_results"][0]["latency"]["p90_ms"] == 999.0
    failed = [g for g in int8["gates"] if g["passed"] is False]
    assert [g["gate"] for g in failed] == ["latency_p90_ms_max"] and failed[0]["source"] == "device"

    res["artifact"]["sha256"] = "0" * 64
    (tmp_path / "other.json").write_text(json.dumps(res))
    r = CliRunner().invoke(app, ["report", str(report), "--merge", str(tmp_path / "other.json")])
    assert r.exit_code == 2 and "not an artifact of this build" in r.output


def test_diagnose_ranks_layers_of_a_built_int8_artifact(built, tmp_path):
    out_dir = built[0]
    r = CliRunner().invoke(app, ["diagnose", str(out_dir / "tiny_int8.tflite"), "--top", "3", "--samples", "4",
                                 "--json", str(tmp_path / "d.json")])
    assert r.exit_code == 0, r.output
    layers = json.loads((tmp_path / "d.json").read_text())
    errors = [l["rmse_over_scale"] for l in layers]
    assert len(layers) >= 3 and errors == sorted(errors, reverse=True)  # worst first
    assert any("tiny_conv" in name for l in layers for name in l["layers"])
    # TensorFlow's, abseil's and the quantization debugger's own lines go to a log, not to the terminal
    from test_terminal import NATIVE_LINE, cli

    run = cli("diagnose", out_dir / "tiny_int8.tflite", "--top", "3", "--samples", "4")
    assert run.returncode == 0, run.stderr
    assert not [line for line in (run.stdout + run.stderr).splitlines() if NATIVE_LINE.match(line)], run.stderr
    r = CliRunner().invoke(app, ["diagnose", str(out_dir / "tiny_fp32.tflite")])
    assert r.exit_code == 2 and "is fp32" in r.output
    lone = tmp_path / "lone.tflite"
    shutil.copyfile(out_dir / "tiny_int8.tflite", lone)
    r = CliRunner().invoke(app, ["diagnose", str(lone)])
    assert r.exit_code == 2 and "not inside an edgecv build folder" in r.output


def test_schema_file_is_generated_from_the_typed_results():
    from edgecv.results import report_schema

    assert json.loads(SCHEMA.read_text()) == report_schema(), \
        "regenerate: python -m edgecv.results > edgecv/report/report.schema.json"


def test_a_schema_1_baseline_from_edgecv_0_1_still_gates(built, tmp_path):
    """A report.json written by edgecv 0.1 (schema 1, kept in tests/data) is a valid baseline."""
    old = Path(__file__).parent / "data" / "report_v1_raspberry-pi-4.json"
    v1 = json.loads(old.read_text())
    assert v1["schema_version"] == 1 and "accuracy_delta" in v1["artifacts"][0]
    runner = CliRunner()
    r = runner.invoke(app, ["gate", "--report", str(old), "--baseline", str(old)])
    assert r.exit_code == 0 and "int8: accuracy" in r.stdout and "0 failed" in r.stdout
    worse = copy.deepcopy(v1)
    worse["artifacts"][0]["metrics"]["accuracy"] -= 5.0
    (tmp_path / "worse.json").write_text(json.dumps(worse))
    r = runner.invoke(app, ["gate", "--report", str(tmp_path / "worse.json"), "--baseline", str(old)])
    assert r.exit_code == 1 and "int8: accuracy" in r.stdout and "1 failed" in r.stdout
