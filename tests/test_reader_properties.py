"""Property-based tests (hypothesis) of the readers users feed files to: recipe, target, report and
bench result. Whatever the input, the outcome is what the command line would exit with 0, 1 or 2
and a message, never 5 (edgecv's own failure) or a traceback. Example counts stay small: each
property runs in a few seconds on a 2-core CI machine."""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis", reason="property tests need hypothesis: pip install 'edgecv[test]'")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from edgecv.cli.errors import exit_code_of  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REPORT = json.loads((REPO / "tests/data/report_v2_flowers_raspberry-pi-4.json").read_text())
FAST = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=12)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)

RECIPE_KEYS = ["name", "task", "task_options", "data", "input", "model", "augment", "train", "calibration", "gates",
               "select"]
SECTION_KEYS = ["root", "train", "val", "val_fraction", "seed", "size", "resize", "path", "backbone", "epochs",
                "batch_size", "warmup", "list", "unsafe_deserialization", "custom_objects", "preprocess", "group_by"]
TARGET_KEYS = ["description", "runtime", "artifacts", "gates", "name"]
ARTIFACT_KEYS = ["name", "format", "precision", "io_dtype", "passes", "gates", "calibration", "options"]
TASKS = st.sampled_from(["classification", "keypoints", "embedding", "generic", "no-such-task", ""])


def outcome(call) -> int:
    """The exit code the command line gives for `call()`; fails the test on 5 or an empty message."""
    try:
        call()
    except Exception as e:  # noqa: BLE001 - every exception is judged by the CLI's own policy
        code, message = exit_code_of(e)
        assert code != 5, f"edgecv's own failure (exit 5) on this input: {message}"
        assert code in (1, 2, 3) and message.strip(), (code, message)
        return code
    return 0


def section(keys):
    return st.dictionaries(st.sampled_from(keys), values, max_size=5)


recipe_data = st.fixed_dictionaries(
    {"name": st.sampled_from(["tiny", "", "a/b", "x" * 80]) | st.text(max_size=6), "task": TASKS},
    optional={k: section(SECTION_KEYS) | values for k in RECIPE_KEYS if k not in ("name", "task")})
target_data = st.fixed_dictionaries({}, optional={
    "description": values, "runtime": section(["threads", "batch", "delegate"]) | values,
    "artifacts": st.lists(section(ARTIFACT_KEYS) | values, max_size=3) | values,
    "gates": st.dictionaries(st.sampled_from(["latency_p50_ms_max", "accuracy_drop_max", "size_mb_max", "confidence",
                                              "tolerances", "nme_max"]), values, max_size=3) | values})


def write(folder: Path, name: str, content) -> Path:
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    return path


def as_yaml(data) -> str:
    return yaml.safe_dump(data, allow_unicode=True)


@FAST
@given(st.binary(max_size=400) | recipe_data.map(as_yaml))
def test_any_recipe_file_is_read_or_refused_with_exit_2(content):
    from edgecv.config import load_recipe

    with tempfile.TemporaryDirectory() as d:
        assert outcome(lambda: load_recipe(write(Path(d), "edgecv.yaml", content))) in (0, 2)


@FAST
@given(st.binary(max_size=400) | target_data.map(as_yaml))
def test_any_target_file_is_read_or_refused_with_exit_2(content):
    from edgecv.config import load_target

    with tempfile.TemporaryDirectory() as d:
        assert outcome(lambda: load_target(str(write(Path(d), "t.yaml", content)))) in (0, 2)


def mutated(document: dict, data) -> dict:
    """The document with a few values somewhere inside it replaced by arbitrary JSON values."""
    doc = copy.deepcopy(document)
    for _ in range(data.draw(st.integers(1, 3))):
        node, path = doc, []
        while isinstance(node, (dict, list)) and node and data.draw(st.booleans()):
            key = data.draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
            parent, node = node, node[key]
            path.append((parent, key))
        if path:
            parent, key = path[-1]
            parent[key] = data.draw(values)
        elif data.draw(st.booleans()):
            doc = data.draw(values)
            break
    return doc


def dumps(doc) -> str:
    return json.dumps(doc, allow_nan=True)


@FAST
@given(st.data())
def test_any_report_is_read_or_refused_with_exit_2(data):
    from edgecv.report.regression import read_report

    doc = mutated(REPORT, data)
    content = data.draw(st.sampled_from(["json", "bytes"]))
    raw = dumps(doc) if content == "json" else data.draw(st.binary(max_size=200))
    with tempfile.TemporaryDirectory() as d:
        path = write(Path(d), "report.json", raw)
        assert outcome(lambda: read_report(path, "--report")) in (0, 2)


def bench_result() -> dict:
    art = REPORT["artifacts"][0]
    return {"schema": "edgecv.bench/1", "created": "2026-01-01T00:00:00+00:00",
            "artifact": {"name": art["name"], "sha256": art["sha256"], "path": "x.tflite"},
            "device": {"cpu": "Cortex-A72", "cpu_count": 4, "hostname": "pi"}, "threads": 4,
            "runtime": {"library": "tflite-runtime 2.14"}, "load_seconds": 0.01, "first_inference_ms": 5.0,
            "memory": {"peak_rss_mb": 40.0}, "latency": {"p50_ms": 4.0, "p90_ms": 4.5, "p99_ms": 5.0},
            "latency_by_batch": [{"batch": 1, "p50_ms": 4.0, "p90_ms": 4.5, "p99_ms": 5.0, "mean_ms": 4.1,
                                  "throughput_ips": 250.0, "runs": 50, "warmup": 5}],
            "accuracy": {"top1": 90.0, "top5": 99.0, "images": 100}, "metrics": {"accuracy": 90.0}}


@FAST
@given(st.data())
def test_any_bench_result_merges_or_is_refused_with_exit_2(data):
    from edgecv.report.bench_result import check_bench_result
    from edgecv.report.merge import merge_device_results
    from edgecv.report.outputs import device_lines
    from edgecv.results import load_report

    res = mutated(bench_result(), data)

    def merge():
        with tempfile.TemporaryDirectory() as d:
            path = write(Path(d), "result.json", dumps(res))
            from edgecv.files import read_json

            checked = check_bench_result(read_json(path, "--merge"), path)
            report = load_report(copy.deepcopy(REPORT))
            failures = merge_device_results(report, [checked])
            device_lines(report)  # what `report --merge` prints next
            if failures:
                from edgecv.errors import GateFailure

                raise GateFailure("; ".join(failures))

    assert outcome(merge) in (0, 1, 2)
