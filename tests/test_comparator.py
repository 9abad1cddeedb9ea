"""The comparator on hand-built outputs whose right answers are known."""

import math

import numpy as np
import pytest

from edgecv.results import ArtifactResult, Validation, load_report
from edgecv.tasks import get_task
from edgecv.tasks.classification import classification_metrics
from edgecv.validate.comparator import compare, output_agreement
from edgecv.validate.gates import check_gates, not_applicable
from edgecv.runtimes.latency import measure_latency

REF = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
LABELS = np.array([0, 1, 2, 1])  # the reference gets 3 of 4 right
TASK = get_task("classification")
INFO = {"class_names": ["a", "b", "c"]}


def named(x):
    return {"probabilities": x}


def test_accuracy_recall_confusion():
    m = classification_metrics(REF, LABELS)
    assert m["accuracy"] == 75.0 and m["top5_accuracy"] is None  # 3 classes: no top-5
    assert m["per_class_recall"] == [1.0, 0.5, 1.0]
    assert m["confusion_matrix"] == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]


def test_identical_outputs_agree_perfectly():
    a = output_agreement(REF, REF.copy())
    assert a.max_abs_error == 0.0 and math.isinf(a.snr_db) and a.cosine_similarity == pytest.approx(1.0)
    assert TASK.agreement(named(REF), named(REF.copy()), INFO)["top1_agreement"] == 1.0


def test_known_disagreement_and_snr():
    cand = REF.copy()
    cand[3] = [0.3, 0.6, 0.1]  # flips sample 3 to class 1 (now correct)
    c = compare(TASK, INFO, named(cand), LABELS, named(REF))
    assert c.metrics["accuracy"] == 100.0 and c.reference_metrics["accuracy"] == 75.0 and c.deltas["accuracy"] == 25.0
    assert c.agreement["top1_agreement"] == 0.75
    out = c.outputs["probabilities"]
    assert out.max_abs_error == pytest.approx(0.3) and out.shape == [4, 3]
    noise = 0.3**2 * 2
    assert out.snr_db == pytest.approx(10 * np.log10((REF**2).sum() / noise))


def test_every_named_output_is_compared_and_a_lone_unnamed_output_is_the_tasks():
    c = compare(TASK, INFO, {"output_0": REF}, LABELS, named(REF))
    assert set(c.outputs) == {"probabilities"} and c.deltas["accuracy"] == 0.0
    with pytest.raises(ValueError, match="probabilities"):
        compare(TASK, INFO, {"a": REF, "b": REF}, LABELS, named(REF))


def test_nonfinite_outputs_are_counted_not_hidden():
    cand = REF.copy()
    cand[0, 0] = np.nan
    c = compare(TASK, INFO, named(cand), LABELS, named(REF))
    assert c.nonfinite_outputs == 1 and "NaN" in c.notes[0]


def test_top5():
    scores = np.eye(10)[[3, 4]] + np.linspace(0, 0.5, 10)  # argmax 3 and 4; next best 9, 8, 7, 6
    m = classification_metrics(scores, np.array([9, 0]))
    assert m["accuracy"] == 0.0 and m["top5_accuracy"] == 50.0


def result(**kw) -> ArtifactResult:
    return ArtifactResult(name="int8", format="tflite", precision="int8", status="ok", **kw)


def test_gates_name_artifact_value_and_limit():
    entry = result(metrics={"accuracy": 90.0}, deltas={"accuracy": -2.5}, agreement={"top1_agreement": 0.99},
                   latency={"p50_ms": 4.0, "p90_ms": 9.0}, size_bytes=3_500_000)
    res = {g.gate: g for g in check_gates(entry, {"accuracy_drop_max": 1.0, "top1_agreement_min": 0.98,
                                                  "latency_p90_ms_max": 8.0, "size_mb_max": 4.0,
                                                  "accuracy_min": None}, TASK)}
    assert set(res) == {"accuracy_drop_max", "top1_agreement_min", "latency_p90_ms_max", "size_mb_max"}
    assert not res["accuracy_drop_max"].passed and res["accuracy_drop_max"].value == 2.5
    assert "int8" in res["accuracy_drop_max"].message and "2.5" in res["accuracy_drop_max"].message
    assert res["top1_agreement_min"].passed and res["size_mb_max"].passed
    assert not res["latency_p90_ms_max"].passed


def test_gate_on_unmeasured_value_is_not_passed():
    entry = result(validation=Validation(numeric=False, reason="needs macOS"))
    res = check_gates(entry, {"accuracy_drop_max": 1.0}, TASK)
    assert res[0].passed is None and "needs macOS" in res[0].message


def test_per_output_tolerance_gates_polygraphy_style():
    cand = REF + 0.05
    c = compare(TASK, INFO, named(cand), LABELS, named(REF), rtols={"probabilities": 0.0})
    entry = result(**c.to_result_fields())
    ok = check_gates(entry, {}, TASK, {"probabilities": {"atol": 0.06, "rtol": 0.0}})
    tight = check_gates(entry, {"output_max_abs_error_max": 0.01}, TASK, {"*": {"atol": 0.01, "rtol": 0.0}})
    assert [g.passed for g in ok] == [True] and ok[0].gate == "tolerance:probabilities"
    assert [g.passed for g in tight] == [False, False]
    assert tight[0].value == pytest.approx(0.05)


def test_a_gate_of_another_task_does_not_apply():
    class NoGates(type(TASK)):
        name = "test_no_gates"
        gates = ()

    assert check_gates(result(metrics={"accuracy": 1.0}), {"accuracy_min": 90.0}, NoGates()) == []
    assert not_applicable({"accuracy_min": 90.0, "size_mb_max": 1.0}, NoGates()) == ["accuracy_min"]


def test_schema_1_report_reads_as_schema_2():
    old = {"schema_version": 1, "edgecv_version": "0.1.0", "created": "x", "target": {"name": "t"},
           "recipe": {"name": "r", "task": "classification"}, "data": {"classes": ["a", "b"]},
           "reference": {"accuracy": 90.0, "per_class_recall": [1.0, 0.8]},
           "artifacts": [{"name": "int8", "format": "tflite", "precision": "int8", "status": "ok",
                          "metrics": {"accuracy": 89.0}, "accuracy_delta": -1.0,
                          "agreement": {"top1_agreement": 0.98, "max_abs_error": 0.2, "mean_abs_error": 0.01,
                                        "cosine_similarity": 0.99, "snr_db": 20.0}}]}
    r = load_report(old)
    a = r.artifacts[0]
    assert r.schema_version == 2 and r.reference.metrics["accuracy"] == 90.0 and r.task_info["class_names"] == ["a", "b"]
    assert a.deltas == {"accuracy": -1.0} and a.agreement == {"top1_agreement": 0.98}
    assert a.outputs["probabilities"].snr_db == 20.0


def test_latency_runs_until_count_and_time():
    calls = []
    lat = measure_latency(lambda b: calls.append(len(b)), np.zeros((3, 2, 2, 3), np.uint8), batch=2,
                          warmup=2, min_runs=10, min_seconds=0.0)
    assert lat.runs == 10 and len(calls) == 12 and set(calls) == {2}
    assert lat.p50_ms <= lat.p90_ms <= lat.p99_ms
