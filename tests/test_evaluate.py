"""One evaluation kernel: the build, the accuracy-aware search and the device commands judge an
artifact with the same function, so a candidate the search accepts scores what the build reports."""

import pytest

from edgecv.config.target import Gates, effective_gates


def test_a_search_candidate_is_judged_as_the_build_judges_it(tmp_path, tiny_model, tiny_val, tiny_calibration):
    from edgecv.config import ArtifactSpec
    from edgecv.exporters import ExportContext, get_exporter
    from edgecv.formats.accuracy_aware import quality_gates
    from edgecv.validate.evaluate import EvaluationSet, evaluate_artifact

    art = get_exporter("tflite")().export(tiny_model, ArtifactSpec(name="f", format="tflite"), tmp_path,
                                          ExportContext("tiny", tiny_calibration))
    images, labels = tiny_val
    task = tiny_model.make_task()
    evaluation = EvaluationSet(images, labels, tiny_model.info, tiny_model.predict(images))
    gates = Gates(accuracy_drop_max=0.5, latency_p50_ms_max=1e-6, tolerances={"*": {"atol": 1e-3, "rtol": 0.0}})
    build = evaluate_artifact(art.path, task, evaluation, gates=gates, batches=(1,), min_runs=2, min_seconds=0.0)
    search = evaluate_artifact(art.path, task, evaluation, gates=gates, only_gates=quality_gates(task), timing=False)
    assert search.metrics == build.metrics and search.deltas == build.deltas and search.agreement == build.agreement
    assert {g.gate for g in search.gates} == {"accuracy_drop_max"}  # quality only: no latency, no tolerances
    judged = {g.gate: g for g in build.gates}
    assert set(judged) == {"accuracy_drop_max", "latency_p50_ms_max", "tolerance:probabilities"}
    assert judged["latency_p50_ms_max"].passed is False and judged["accuracy_drop_max"].passed is True
    assert build.latency["p50_ms"] > 0 and search.latency is None and build.size_bytes == art.path.stat().st_size


def test_effective_gates_layer_recipe_target_and_artifact():
    recipe = Gates(accuracy_drop_max=3.0, tolerances={"*": {"atol": 0.1, "rtol": 0.0}})
    target = Gates(accuracy_drop_max=1.0, latency_p50_ms_max=5.0)
    artifact = Gates(latency_p50_ms_max=9.0, tolerances={"probabilities": {"atol": 0.2, "rtol": 0.0}})
    g = effective_gates(recipe, target, artifact)
    assert g.limits()["accuracy_drop_max"] == 1.0 and g.limits()["latency_p50_ms_max"] == 9.0
    assert set(g.tolerances) == {"*", "probabilities"}
    assert effective_gates(None, target).limits()["latency_p50_ms_max"] == pytest.approx(5.0)
