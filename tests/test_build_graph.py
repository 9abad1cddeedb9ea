"""The build graph `--dry-run` prints is the graph that runs: for a cold build, a warm rebuild and a
forced export, the steps the plan says will run are the steps that ran, and every step that ran
read exactly the steps it declares (a read it does not declare is an error)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from edgecv.orchestrator.runner import load_build
from synthetic import make_image_folder, write_recipe

QUIET = Console(file=open("/dev/null", "w"))
REPO = Path(__file__).resolve().parents[1]


def target(tmp_path: Path, name: str) -> str:
    p = tmp_path / f"{name}.yaml"
    p.write_text("description: d\nruntime: {threads: 1}\nartifacts:\n  - {name: int8, format: tflite, precision: int8}\n"
                 "  - {name: fp32, format: tflite}\ngates: {accuracy_drop_max: 100}\n")
    return str(p)


def step_of(build, record) -> str:
    """The graph step a stage record was written by."""
    if record.stage == "passes":
        return next(s.id for s in build.graph.steps.values() if s.stage == "passes" and s.key == record.key)
    return f"{record.stage} {record.target}/{record.artifact}" if record.target else record.stage


def build_and_trace(recipe, targets, out, **kw) -> dict:
    """Plan, run, and what ran: the plan's status of every step, the steps whose stage records say
    they were computed, and for each computed step what it read."""
    b = load_build(recipe, targets, out, console=QUIET, **kw)
    plan = {r.step: r.status for r in b.plan(every_step=True)}
    result = b.run()
    assert result.exit_code == 0, [o.messages for o in result.outcomes]
    ran = sorted({step_of(b, r) for r in result.stages if not r.hit})
    return {"plan": plan, "ran": ran, "started": b.executor.started,
            "reads": {s: sorted(b.executor.reads[s]) for s in ran},
            "declared": {s: sorted(b.graph[s].read_ids) for s in ran}}


def will_run(plan: dict) -> set:
    return {step for step, status in plan.items() if status == "run"}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("graph")
    data = make_image_folder(root / "images", classes=3, per_class=8)
    recipe = write_recipe(root / "edgecv.yaml", data, train__finetune__epochs=1, calibration__size=4)
    return root, recipe, [target(root, "a"), target(root, "b")]


def test_the_dry_run_graph_is_the_graph_that_runs(project, tmp_path):
    root, recipe, (a, b) = project
    out = tmp_path / "out"

    cold = build_and_trace(recipe, [a, b], out)
    assert will_run(cold["plan"]) == set(cold["ran"]) == {
        "index", "train", "reference", "export a/int8", "validate a/int8", "export a/fp32", "validate a/fp32"}
    # target b's artifacts are a's: the plan says their entries are reused, and they were
    assert cold["plan"]["export b/int8"] == "reuses export a/int8" and cold["plan"]["validate b/fp32"] == "reuses validate a/fp32"
    assert cold["reads"] == cold["declared"]  # each step that ran read what it declares, no more, no less

    # a warm rebuild, in a fresh process: nothing to run, training not even loaded, no TensorFlow
    script = ("import json, sys; sys.path.insert(0, sys.argv[1]); from test_build_graph import build_and_trace; "
              "t = build_and_trace(sys.argv[2], sys.argv[3:5], sys.argv[5]); "
              "t['tensorflow'] = 'tensorflow' in sys.modules; print(json.dumps(t))")
    proc = subprocess.run([sys.executable, "-c", script, str(REPO / "tests"), str(recipe), a, b, str(out)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    warm = json.loads(proc.stdout.strip().splitlines()[-1])
    assert will_run(warm["plan"]) == set(warm["ran"]) == set()
    assert set(warm["plan"].values()) == {"cached", "each build"}
    assert "train" not in warm["started"] and not any(s.startswith("passes") for s in warm["started"])
    assert warm["tensorflow"] is False

    # a forced export: the exports run; their validations depend on the bytes (TFLite writes the same)
    forced = build_and_trace(recipe, [a, b], out, force=frozenset({"export"}))
    exports = {s for s in forced["plan"] if s.startswith("export ")}
    assert will_run(forced["plan"]) == set(forced["ran"]) == exports
    assert {forced["plan"][s] for s in forced["plan"] if s.startswith("validate ")} == {"if new bytes"}
    assert forced["reads"] == forced["declared"] and "train" in forced["started"]  # the model, loaded to export


def test_artifacts_with_the_same_passes_share_one_step_and_forcing_it_remakes_their_exports(project, tmp_path):
    root, recipe, _ = project
    t = root / "pruned.yaml"
    t.write_text("description: d\nruntime: {threads: 1}\ngates: {accuracy_drop_max: 100}\nartifacts:\n"
                 "  - {name: p8, format: tflite, precision: int8, passes: [{name: prune, sparsity: 0.5, epochs: 1}]}\n"
                 "  - {name: p32, format: tflite, passes: [{name: prune, sparsity: 0.5, epochs: 1}]}\n")
    out = tmp_path / "out"
    cold = build_and_trace(recipe, [str(t)], out)
    passes = [s for s in cold["plan"] if s.startswith("passes ")]
    assert passes == ["passes pruned/p8"]  # one step for both artifacts
    assert will_run(cold["plan"]) == set(cold["ran"]) and "passes pruned/p8" in cold["ran"]
    assert cold["reads"] == cold["declared"] and "passes pruned/p8" in cold["reads"]["validate pruned/p32"]

    # with its exports cached, a forced passes step is asked for only because they are forced too
    forced = build_and_trace(recipe, [str(t)], out, force=frozenset({"passes"}))
    assert will_run(forced["plan"]) == set(forced["ran"]) == {"passes pruned/p8", "export pruned/p8",
                                                                "validate pruned/p8", "export pruned/p32",
                                                                "validate pruned/p32"}


def test_a_step_cannot_read_what_it_does_not_declare(tmp_path):
    from edgecv.orchestrator.execute import Executor, UndeclaredRead
    from edgecv.orchestrator.graph import BuildGraph, Step

    class Reads:
        def __init__(self, role):
            self.role = role

        def run(self, ctx, step, inputs):
            return inputs[self.role]

    graph = BuildGraph({"index": Step("index", "index", "k1"),
                        "train": Step("train", "train", "k2", (("index", "index"),))}, keys=None)
    ex = Executor(graph, {"index": Reads("nothing"), "train": Reads("index")}, None, tmp_path)
    with pytest.raises(UndeclaredRead, match="step 'index' read 'nothing', which it does not declare"):
        ex.output("train")
