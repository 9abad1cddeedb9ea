"""Confidence intervals and the gates stated on them: one image flipping at N=144 must not fail a
build, a real loss must; intervals are exact counting methods or seeded, so they do not move
between runs or machines; old reports still load and gate."""

import copy
import json
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from edgecv.cli.main import app
from edgecv.config.target import Gates
from edgecv.results import ArtifactResult, load_report
from edgecv.tasks import get_task
from edgecv.validate.comparator import compare
from edgecv.validate.gates import check_gates, known_gate_names
from edgecv.validate.intervals import (attach_intervals, bootstrap_mean, mcnemar_exact_p, newcombe_paired,
                                       wilson)

V2_REPORT = Path(__file__).parent / "data" / "report_v2_flowers_raspberry-pi-4.json"
N, REF_RIGHT = 144, 142  # the flowers validation split: float 98.61 %
CLASSES = 12


def scores_for(right: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Softmax-like rows whose top-1 is the label where `right`, another class elsewhere."""
    pred = np.where(right, labels, (labels + 1) % CLASSES)
    out = np.full((len(labels), CLASSES), 0.01)
    out[np.arange(len(labels)), pred] = 0.9
    return out


def flowers_like(lost: int, gained: int = 0, confidence: float = 0.95):
    """An int8 result against a float reference right on 142 of 144 images that loses `lost` of
    them and gains `gained` of the two it misses."""
    labels = np.arange(N) % CLASSES
    ref_right = np.arange(N) < REF_RIGHT
    cand_right = ref_right.copy()
    cand_right[:lost] = False
    cand_right[REF_RIGHT:REF_RIGHT + gained] = True
    task = get_task("classification")
    info = {"class_names": [f"c{i}" for i in range(CLASSES)]}
    cmp = compare(task, info, {"probabilities": scores_for(cand_right, labels)}, labels,
                  {"probabilities": scores_for(ref_right, labels)}, confidence=confidence)
    return task, ArtifactResult(name="int8", format="tflite", precision="int8", status="ok",
                                **cmp.to_result_fields()), cmp


def gates_of(result, task, **limits):
    return {g.gate: g for g in check_gates(result, limits, task)}


# ---- the methods -------------------------------------------------------------------------------

def test_newcombe_paired_reproduces_the_published_example():
    """Newcombe (1998), method 10, on his worked table (36, 12, 2, 0): 0.0569 to 0.3404."""
    low, high = newcombe_paired(36, 12, 2, 0)
    assert (round(low, 4), round(high, 4)) == (0.0569, 0.3404)


def test_wilson_and_mcnemar_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    for k, n, conf in ((141, 144, 0.95), (142, 144, 0.9), (0, 20, 0.95), (20, 20, 0.99), (7, 13, 0.8)):
        ci = stats.binomtest(k, n).proportion_ci(conf, method="wilson")
        assert wilson(k, n, conf) == pytest.approx((ci.low, ci.high), abs=1e-12)
    for gained, lost in ((0, 1), (1, 2), (0, 8), (3, 3), (10, 2)):
        expected = stats.binomtest(gained, gained + lost, 0.5).pvalue
        assert mcnemar_exact_p(gained, lost) == pytest.approx(expected)


def test_bootstrap_is_seeded_and_agrees_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    values = np.random.default_rng(3).gamma(2.0, 0.02, size=300)  # per-image NME-like
    first, again = bootstrap_mean(values), bootstrap_mean(values)
    assert first == again  # same numbers every run and machine
    ref = stats.bootstrap((values,), np.mean, method="percentile", n_resamples=20000, random_state=0)
    assert first == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high), rel=0.03)
    assert first[0] < values.mean() < first[1]


# ---- gates at N = 144 --------------------------------------------------------------------------

def test_one_image_flip_passes_the_interval_gate_where_the_point_gate_fails():
    task, result, cmp = flowers_like(lost=1)
    assert result.metrics["accuracy"] == pytest.approx(97.9167, abs=1e-3)
    assert result.deltas["accuracy"] == pytest.approx(-0.6944, abs=1e-3)
    g = gates_of(result, task, accuracy_drop_max=0.5, accuracy_drop_max_significant=0.5)
    assert g["accuracy_drop_max"].passed is False  # the point gate: 0.69 > 0.5
    sig = g["accuracy_drop_max_significant"]
    assert sig.passed is True and sig.judged_on == "interval low" and sig.confidence == 0.95
    assert sig.interval == pytest.approx([-2.2197, 4.0439], abs=1e-3)  # the drop, in points
    assert "95% interval -2.22 to 4.044 points" in sig.message and "0 gained" not in sig.message
    d = result.delta_intervals["accuracy"]
    assert d.discordant == {"gained": 0, "lost": 1} and d.p_value == 1.0 and d.n == N


@pytest.mark.parametrize("lost", [7, 8])  # 4.9 and 5.6 points
def test_a_five_point_loss_fails_the_interval_gate(lost):
    task, result, _ = flowers_like(lost=lost)
    g = gates_of(result, task, accuracy_drop_max_significant=1.0)["accuracy_drop_max_significant"]
    assert g.passed is False and g.interval[0] > 1.0 and "FAILED" in g.message
    assert result.delta_intervals["accuracy"].p_value < 0.05


def test_confident_and_min_forms_hold_the_other_end():
    task, same, _ = flowers_like(lost=0)
    _, flip, _ = flowers_like(lost=1)
    assert gates_of(same, task, accuracy_drop_max_confident=3.0)["accuracy_drop_max_confident"].passed is True
    g = gates_of(flip, task, accuracy_drop_max_confident=3.0)["accuracy_drop_max_confident"]
    assert g.passed is False and g.judged_on == "interval high"  # 4.04 points cannot be ruled out at N=144
    g = gates_of(flip, task, accuracy_min_significant=99.0, accuracy_min_confident=95.0)
    assert g["accuracy_min_significant"].passed is True  # 97.92 %, but the interval reaches 99.29 %
    assert g["accuracy_min_confident"].passed is False  # its low end 94.05 % is under 95 %


@pytest.mark.parametrize("lost,gained", [(0, 0), (1, 0), (2, 1), (8, 0), (0, 2), (20, 2)])
def test_intervals_contain_the_point_estimates(lost, gained):
    _, result, _ = flowers_like(lost, gained)
    iv, dv = result.intervals["accuracy"], result.delta_intervals["accuracy"]
    assert iv.low <= result.metrics["accuracy"] <= iv.high and 0 <= iv.low and iv.high <= 100
    assert dv.low <= result.deltas["accuracy"] <= dv.high


def test_confidence_is_an_option_and_cached_scores_are_rejudged_at_it():
    task, result, cmp = flowers_like(lost=1)
    wide = result.delta_intervals["accuracy"]
    gates = Gates(confidence=0.9, accuracy_drop_max_significant=1.0)
    assert gates.limits() == {"accuracy_drop_max_significant": 1.0}  # the level is no gate
    cached = ArtifactResult.model_validate(json.loads(result.model_dump_json()))  # as validation.json keeps it
    attach_intervals(cached, task, cmp.reference_scores, gates.confidence)
    narrow = cached.delta_intervals["accuracy"]
    assert narrow.confidence == 0.9 and wide.low < narrow.low < narrow.high < wide.high
    with pytest.raises(ValueError, match="confidence"):
        Gates(confidence=95)


def test_interval_gates_are_known_and_every_target_file_still_loads():
    from edgecv.config.loader import list_targets, load_target

    assert {"accuracy_drop_max_significant", "accuracy_drop_max_confident", "accuracy_min_significant",
            "nme_max_significant", "nme_increase_max_confident"} <= known_gate_names()
    assert "top1_agreement_min_significant" not in known_gate_names()  # no per-sample agreement yet
    from edgecv.formats.accuracy_aware import quality_gates

    assert "accuracy_drop_max_significant" in quality_gates(get_task("classification"))  # a search aims for it
    for name, path in list_targets():
        target = load_target(str(path))
        assert "confidence" not in target.gates.limits()


def test_keypoint_sample_scores_average_to_the_metrics():
    task = get_task("keypoints", {"names": ["a", "b", "c"], "normalize_by": ["a", "b"]})
    rng = np.random.default_rng(0)
    t = np.zeros((40, 3, 3))
    t[..., :2] = rng.uniform(0.2, 0.8, (40, 3, 2))
    t[..., 2] = 1
    t[5, :, 2] = 0  # an unlabelled image: left out of both
    pred = t[..., :2] + rng.normal(0, 0.02, (40, 3, 2))
    info = {"input_size": (64, 64), "normalize_by": [0, 1], "failure_nme": 0.1}
    m = task.evaluate({"keypoints": pred}, t, info)
    s = task.sample_scores({"keypoints": pred}, t, info)
    assert np.isnan(s["nme"][5]) and np.nanmean(s["nme"]) == pytest.approx(m["nme"])
    assert np.nanmean(s["failure_rate"]) == pytest.approx(m["failure_rate"])
    cmp = compare(task, info, {"keypoints": pred}, t, {"keypoints": t[..., :2]})
    assert cmp.intervals["nme"].low < m["nme"] < cmp.intervals["nme"].high and cmp.intervals["nme"].n == 39
    assert "paired bootstrap" in cmp.delta_intervals["nme"].method
    assert compare(task, info, {"keypoints": pred}, t, {"keypoints": t[..., :2]}).delta_intervals == \
        cmp.delta_intervals  # seeded


def test_embedding_recall_at_1_scores_each_query():
    task = get_task("embedding")
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(4, 8))
    labels = np.repeat(np.arange(4), 15)
    emb = centres[labels] + rng.normal(0, 0.9, (60, 8))
    targets = np.stack([labels, (np.arange(60) % 3 == 0).astype(int)], axis=1)  # every third a query
    m = task.evaluate({"embedding": emb}, targets, {})
    s = task.sample_scores({"embedding": emb}, targets, {})["recall_at_1"]
    assert np.isnan(s[targets[:, 1] == 0]).all() and 100 * np.nanmean(s) == pytest.approx(m["recall_at_1"])
    assert "recall_at_1_drop_max_significant" in known_gate_names()


# ---- reports -----------------------------------------------------------------------------------

def test_a_schema_2_report_without_intervals_still_loads_and_gates():
    raw = json.loads(V2_REPORT.read_text())
    assert raw["schema_version"] == 2 and "intervals" not in raw["artifacts"][0]
    report = load_report(raw)
    int8 = report.artifacts[0]
    assert int8.intervals == {} and int8.sample_scores == {}
    g = gates_of(int8, get_task("classification"), accuracy_drop_max_significant=1.0)
    assert g["accuracy_drop_max_significant"].passed is True
    assert "no confidence interval for accuracy here: judged on the measured value" in \
        g["accuracy_drop_max_significant"].message


def _report_with_intervals():
    report = load_report(json.loads(V2_REPORT.read_text()))
    task, result, cmp = flowers_like(lost=1)
    int8 = report.artifacts[0]
    for k, v in result.model_dump(include={"sample_scores", "intervals", "delta_intervals"}).items():
        setattr(int8, k, getattr(result, k))
    int8.gates = check_gates(int8, {"accuracy_drop_max_significant": 0.5, "accuracy_drop_max": 0.5}, task)
    report.reference.sample_scores = cmp.reference_scores
    report.reference.intervals = {"accuracy": _wilson_interval(REF_RIGHT)}
    report.data["eval_images"] = [f"img{i}.jpg" for i in range(N)]
    return report


def _wilson_interval(k):
    from edgecv.validate.intervals import metric_interval

    return metric_interval(get_task("classification").metric("accuracy"), [1.0] * k + [0.0] * (N - k))


def test_every_report_form_shows_the_interval_and_how_each_gate_was_judged():
    from edgecv.report.ci import junit_xml, markdown_summary
    from edgecv.report.html import html_report
    from edgecv.report.table import print_summary

    report = _report_with_intervals()
    line = ("int8: accuracy 97.92% (95% interval 94.05 to 99.29%, n=144), Δ -0.69 points (paired interval "
            "-4.04 to +2.22 points; 0 gained, 1 lost; McNemar p 1)")
    md = markdown_summary(report)
    assert f"- {line}" in md and "float reference: accuracy 98.61% (95% interval 95.08 to 99.62%" in md
    console = Console(record=True, width=200)
    print_summary(report, console)
    assert line in console.export_text()
    cases = {c.get("name"): c for c in ET.fromstring(junit_xml(report).split("\n", 1)[1]).iter("testcase")
             if c.get("classname", "").endswith(".int8")}
    props = {p.get("name"): p.get("value") for p in cases["accuracy_drop_max_significant"].iter("property")}
    assert props["judged_on"] == "interval low" and float(props["interval_low"]) == pytest.approx(-2.2197, abs=1e-3)
    assert cases["accuracy_drop_max"].find("failure") is not None
    assert cases["accuracy_drop_max_significant"].find("failure") is None
    html = html_report(report)
    assert 'id="intervals"' in html and "newcombe paired (method 10)" in html and "interval low" in html


def test_a_device_measured_metric_is_judged_on_the_device_value():
    """A bench result carries no per-image scores: the build host's interval does not describe the
    device's number, so the interval gate says it judged the device's value."""
    from edgecv.report.merge import merge_device_results

    report = _report_with_intervals()
    report.target["gates"]["accuracy_drop_max_significant"] = 0.5
    int8 = report.artifacts[0]
    report.data["eval_set"] = {"count": N, "sha256": "f" * 64}  # the device ran the build's own images
    bench = {"schema": "edgecv.bench/1", "artifact": {"name": "int8", "sha256": int8.sha256},
             "latency": {"p50_ms": 5.0, "p90_ms": 6.0}, "accuracy": {"top1": 100 * 140 / N},
             "eval_set": {"count": N, "sha256": "f" * 64}}
    merge_device_results(report, [bench])
    g = {g.gate: g for g in int8.gates}["accuracy_drop_max_significant"]
    assert g.source == "device" and g.passed is False and g.judged_on == "value"
    assert "no confidence interval for accuracy here: judged on the measured value" in g.message
    assert int8.intervals["accuracy"].n == N  # the build host's interval stays in the report


# ---- edgecv gate against a baseline ------------------------------------------------------------

def _paired_reports(tmp_path, lost):
    base = _report_with_intervals()
    base.artifacts[0].sample_scores = {"accuracy": base.reference.sample_scores["accuracy"]}  # the float model's
    base.artifacts[0].metrics["accuracy"] = 100 * REF_RIGHT / N
    cur = copy.deepcopy(base)
    _, result, _ = flowers_like(lost=lost)
    cur.artifacts[0].sample_scores = result.sample_scores
    cur.artifacts[0].metrics["accuracy"] = result.metrics["accuracy"]
    paths = []
    for name, r in (("baseline", base), ("current", cur)):
        (tmp_path / f"{name}.json").write_text(json.dumps(r.to_json()))
        paths.append(str(tmp_path / f"{name}.json"))
    return paths


def gate(*args):
    return CliRunner().invoke(app, ["gate", *args, "--max-latency-growth", "1000", "--max-size-growth", "1000"])


def test_edgecv_gate_judges_the_paired_interval_when_asked(tmp_path):
    baseline, current = _paired_reports(tmp_path, lost=1)
    r = gate("--report", current, "--baseline", baseline, "--max-accuracy-drop", "0.5")
    out = " ".join(r.stdout.split())
    assert r.exit_code == 1 and "paired 95% interval" in out and "0 images gained, 1 lost" in out
    r = gate("--report", current, "--baseline", baseline, "--max-accuracy-drop", "0.5", "--judge", "significant")
    assert r.exit_code == 0, r.stdout
    baseline, current = _paired_reports(tmp_path, lost=8)
    r = gate("--report", current, "--baseline", baseline, "--max-accuracy-drop", "1", "--judge", "significant")
    assert r.exit_code == 1 and "fails only when the whole interval is above it" in " ".join(r.stdout.split())


def test_edgecv_gate_says_when_it_cannot_pair(tmp_path):
    r = gate("--report", str(V2_REPORT), "--baseline", str(V2_REPORT), "--judge", "significant")
    assert r.exit_code == 0 and "not paired (a report has no per-image scores" in " ".join(r.stdout.split())
    r = gate("--report", str(V2_REPORT), "--baseline", str(V2_REPORT), "--judge", "maybe")
    assert r.exit_code == 2 and "--judge maybe" in r.output
