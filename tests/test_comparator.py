"""The comparator on hand-built outputs whose right answers are known."""

import math

import numpy as np
import pytest

from edgecv.validate.comparator import agreement, classification_metrics, compare_classification
from edgecv.validate.gates import check_gates
from edgecv.validate.latency import measure_latency

REF = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
LABELS = np.array([0, 1, 2, 1])  # the reference gets 3 of 4 right


def test_accuracy_recall_confusion():
    m = classification_metrics(REF, LABELS)
    assert m.accuracy == 75.0 and m.top5_accuracy is None  # 3 classes: no top-5
    assert m.per_class_recall == [1.0, 0.5, 1.0]
    assert m.confusion_matrix == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]


def test_identical_outputs_agree_perfectly():
    a = agreement(REF, REF.copy())
    assert a.top1_agreement == 1.0 and a.max_abs_error == 0.0 and math.isinf(a.snr_db)
    assert a.cosine_similarity == pytest.approx(1.0)


def test_known_disagreement_and_snr():
    cand = REF.copy()
    cand[3] = [0.3, 0.6, 0.1]  # flips sample 3 to class 1 (now correct)
    c = compare_classification(cand, LABELS, REF)
    assert c.metrics.accuracy == 100.0 and c.reference_accuracy == 75.0 and c.accuracy_delta == 25.0
    assert c.agreement.top1_agreement == 0.75
    assert c.agreement.max_abs_error == pytest.approx(0.3)
    noise = 0.3**2 * 2
    assert c.agreement.snr_db == pytest.approx(10 * np.log10((REF**2).sum() / noise))


def test_nonfinite_outputs_are_counted_not_hidden():
    cand = REF.copy()
    cand[0, 0] = np.nan
    c = compare_classification(cand, LABELS, REF)
    assert c.nonfinite_outputs == 1 and "NaN" in c.notes[0]


def test_top5():
    scores = np.eye(10)[[3, 4]] + np.linspace(0, 0.5, 10)  # argmax 3 and 4; next best 9, 8, 7, 6
    m = classification_metrics(scores, np.array([9, 0]))
    assert m.accuracy == 0.0 and m.top5_accuracy == 50.0


def test_gates_name_artifact_value_and_limit():
    entry = {"metrics": {"accuracy": 90.0}, "accuracy_delta": -2.5, "agreement": {"top1_agreement": 0.99},
             "latency": {"p50_ms": 4.0, "p90_ms": 9.0}, "size_bytes": 3_500_000}
    res = {g.gate: g for g in check_gates("int8", entry, {"accuracy_drop_max": 1.0, "top1_agreement_min": 0.98,
                                                          "latency_p90_ms_max": 8.0, "size_mb_max": 4.0,
                                                          "accuracy_min": None})}
    assert set(res) == {"accuracy_drop_max", "top1_agreement_min", "latency_p90_ms_max", "size_mb_max"}
    assert not res["accuracy_drop_max"].passed and res["accuracy_drop_max"].value == 2.5
    assert "int8" in res["accuracy_drop_max"].message and "2.5" in res["accuracy_drop_max"].message
    assert res["top1_agreement_min"].passed and res["size_mb_max"].passed
    assert not res["latency_p90_ms_max"].passed


def test_gate_on_unmeasured_value_is_not_passed():
    res = check_gates("coreml", {"validation": {"numeric": False, "reason": "needs macOS"}}, {"accuracy_drop_max": 1.0})
    assert res[0].passed is None and "needs macOS" in res[0].message


def test_latency_runs_until_count_and_time():
    calls = []
    lat = measure_latency(lambda b: calls.append(len(b)), np.zeros((3, 2, 2, 3), np.uint8), batch=2,
                          warmup=2, min_runs=10, min_seconds=0.0)
    assert lat.runs == 10 and len(calls) == 12 and set(calls) == {2}
    assert lat.p50_ms <= lat.p90_ms <= lat.p99_ms
