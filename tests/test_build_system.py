"""The build system: stage keys and cache, dry-run plans, forced stages, the lock, crash safety."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from edgecv.orchestrator.lock import BuildLock, BuildLocked
from edgecv.orchestrator.runner import load_build, run_build
from edgecv.cli.main import app
from synthetic import make_image_folder, write_recipe

QUIET = Console(file=open("/dev/null", "w"))
REPO = Path(__file__).resolve().parents[1]


def target(tmp_path: Path, name: str, gates: str = "{accuracy_drop_max: 5.0}") -> str:
    p = tmp_path / f"{name}.yaml"
    p.write_text(f"description: d\nruntime: {{threads: 1}}\nartifacts:\n  - {{name: int8, format: tflite, precision: int8}}\n"
                 f"  - {{name: fp32, format: tflite}}\ngates: {gates}\n")
    return str(p)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    data = make_image_folder(root / "images", classes=3, per_class=12)
    recipe = write_recipe(root / "edgecv.yaml", data, train__finetune__epochs=2)
    return root, recipe


def test_plan_then_build_then_everything_cached(project, tmp_path):
    root, recipe = project
    t = target(tmp_path, "a")
    out = tmp_path / "out"
    plan = load_build(recipe, [t], out, console=QUIET).plan()
    assert [(r.stage, r.hit) for r in plan][:3] == [("index", False), ("train", False), ("reference", False)]
    assert not any(r.hit for r in plan)
    first = run_build(recipe, [t], out, console=QUIET)
    assert first.exit_code == 0 and {s.stage for s in first.ran("train")} == {"train"}
    assert all(r.hit for r in load_build(recipe, [t], out, console=QUIET).plan())
    second = run_build(recipe, [t], out, console=QUIET)
    assert second.exit_code == 0 and [s for s in second.stages if not s.hit] == []
    # artifacts and reports are still all there and identical
    m1 = json.loads((out / "a" / "manifest.json").read_text())
    assert {a["name"] for a in m1["artifacts"]} == {"int8", "fp32"}
    for a in m1["artifacts"]:
        from edgecv.files import tree_sha256

        assert tree_sha256(out / "a" / a["path"]) == a["sha256"]
        assert a["key"] and a["stage"] == "export" and a["made_from"] == m1["stage_keys"]["train"]
    assert m1["libraries"]["tensorflow"]

    # a second target with other gates: trains nothing, converts nothing, measures nothing
    t2 = target(tmp_path, "b", gates="{accuracy_drop_max: 0.000001, top1_agreement_min: 0.5}")
    third = run_build(recipe, [t, t2], out, console=QUIET)
    assert [s.stage for s in third.stages if not s.hit] == []
    assert [o.target for o in third.outcomes] == ["a", "b"]

    # a changed head re-trains and re-exports; the plan says so before doing it
    plan = {(r.stage, r.artifact): r.hit for r in load_build(recipe, [t], out, ["model.head.dropout=0.3"], QUIET).plan()}
    assert plan[("index", None)] and not plan[("train", None)] and not plan[("export", "int8")]

    # --force export re-runs exports only (and what follows from them is cached by key)
    forced = run_build(recipe, [t], out, console=QUIET, force={"export"})
    assert {s.stage for s in forced.stages if not s.hit} == {"export"}

    # dry-run on the command line prints the plan and does nothing
    r = CliRunner().invoke(app, ["build", "-t", t, "-r", str(recipe), "-o", str(out), "--dry-run",
                                 "--set", "train.seed=7"])
    assert r.exit_code == 0 and "train" in r.stdout and "run" in r.stdout and "cached" in r.stdout


def test_a_forced_export_that_writes_other_bytes_is_validated_again(project, tmp_path, monkeypatch):
    """Validation is cached by the artifact's bytes, not only by the export's key: an export run again
    under the same key that writes another file must not keep the old file's numbers."""
    import edgecv.formats.tflite.export as tflite_export

    root, recipe = project
    t = target(tmp_path, "a")
    out = tmp_path / "out"
    assert run_build(recipe, [t], out, console=QUIET).exit_code == 0
    real = tflite_export.convert

    def other_bytes(keras_model, precision, *args, **kw):
        if precision == "fp32":
            from edgecv.models.build import copy_keras

            keras_model = copy_keras(keras_model)
            keras_model.set_weights([w * 1.01 for w in keras_model.get_weights()])
        return real(keras_model, precision, *args, **kw)

    monkeypatch.setattr(tflite_export, "convert", other_bytes)
    forced = run_build(recipe, [t], out, console=QUIET, force={"export"})
    assert forced.exit_code == 0
    ran = {(s.stage, s.artifact) for s in forced.stages if not s.hit}
    assert ("validate", "fp32") in ran  # new bytes: measured again
    assert ("validate", "int8") not in ran  # the same bytes: its validation is reused
    monkeypatch.undo()
    assert all(r.hit for r in load_build(recipe, [t], out, console=QUIET).plan())  # the plan knows both


def test_clean_prunes_unused_entries_and_stale_temporaries(project, tmp_path):
    root, recipe = project
    out = tmp_path / "out"
    t = target(tmp_path, "a")
    run_build(recipe, [t], out, console=QUIET)
    stale = out / ".cache" / "export" / ".abc.x.tmp"
    stale.mkdir(parents=True)
    orphan = out / ".cache" / "export" / ("f" * 64)
    orphan.mkdir()
    (orphan / ".complete").write_text("x")
    r = CliRunner().invoke(app, ["clean", "-o", str(out)])
    assert r.exit_code == 0 and "removed 2 cache entries" in r.stdout
    assert not stale.exists() and not orphan.exists()
    assert [s for s in run_build(recipe, [t], out, console=QUIET).stages if not s.hit] == []
    r = CliRunner().invoke(app, ["clean", "-o", str(out), "--all"])
    assert r.exit_code == 0 and not any((out / ".cache").rglob(".complete"))


def test_a_second_build_of_the_same_folder_waits_or_fails_clearly(project, tmp_path):
    _, recipe = project
    out = tmp_path / "out"
    with BuildLock(out):
        t0 = time.monotonic()
        with pytest.raises(BuildLocked, match="is being built by pid"):
            run_build(recipe, [target(tmp_path, "a")], out, console=QUIET, wait_seconds=0.5)
        assert time.monotonic() - t0 >= 0.5


def test_unwritable_output_is_a_clear_error(project, tmp_path):
    _, recipe = project
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    r = CliRunner().invoke(app, ["build", "-t", target(tmp_path, "a"), "-r", str(recipe), "-o", str(blocker / "out")])
    assert r.exit_code == 2 and "cannot write" in r.output and "Traceback" not in r.output


def test_disk_full_is_reported_per_artifact(project, tmp_path, monkeypatch):
    import errno

    import edgecv.files as files

    _, recipe = project
    out = tmp_path / "out"
    run_build(recipe, [target(tmp_path, "a")], out, console=QUIET)  # cached stages; now fill the disk
    real = files.os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    result = run_build(recipe, [target(tmp_path, "a")], out, console=QUIET)
    monkeypatch.setattr(files.os, "fsync", real)
    assert result.exit_code == 3
    assert any("disk full while writing" in m for o in result.outcomes for m in o.messages)


def _build_cmd(recipe: Path, t: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "edgecv.cli.main", "build", "-t", t, "-r", str(recipe), "-o", str(out)]


def _kill_when(cmd: list[str], ready, timeout: float = 240) -> None:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + timeout
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the build finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _artifact_hashes(out: Path, name: str) -> dict:
    return {a["name"]: a["sha256"] for a in json.loads((out / name / "manifest.json").read_text())["artifacts"]}


def test_sigkill_mid_stage_leaves_nothing_half_written_and_resumes_to_the_same_artifacts(project, tmp_path):
    _, recipe = project
    t = target(tmp_path, "k")
    # reference: an uninterrupted build in its own folder
    ref_out = tmp_path / "uninterrupted"
    assert subprocess.run(_build_cmd(recipe, t, ref_out), cwd=REPO, capture_output=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}).returncode == 0

    out = tmp_path / "killed"
    cache = out / ".cache"
    # 1: killed while training (the index is done, the model is not)
    _kill_when(_build_cmd(recipe, t, out), lambda: any(cache.glob("index/*/.complete")))
    assert not any(cache.glob("train/*/.complete"))
    # 2: killed after training, while exporting/validating
    _kill_when(_build_cmd(recipe, t, out), lambda: any(cache.glob("train/*/.complete")))
    for entry in cache.glob("*/*"):  # every entry is complete or a temporary a later build ignores
        assert (entry / ".complete").is_file() or entry.name.endswith(".tmp"), entry
    for f in (out / "k").glob("*.tflite") if (out / "k").exists() else []:
        from ai_edge_litert.interpreter import Interpreter

        Interpreter(model_path=str(f)).allocate_tensors()  # no half-written model in the target folder

    resumed = subprocess.run(_build_cmd(recipe, t, out), cwd=REPO, capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "train" not in resumed.stderr.split("stages run:")[-1].splitlines()[0]  # training resumed from cache
    assert _artifact_hashes(out, "k") == _artifact_hashes(ref_out, "k")


def test_pass_key_follows_the_bytes_of_files_it_names(tmp_path):
    from edgecv.orchestrator.keys import passes_key

    weights = tmp_path / "student.h5"
    weights.write_bytes(b"one")
    resolve = lambda p: tmp_path / p  # noqa: E731
    passes = [{"name": "swap", "backbone": "MobileNet", "weights": "student.h5"}]
    before = passes_key("m", passes, "c", resolve)
    assert passes_key("m", passes, "c", resolve) == before
    weights.write_bytes(b"two")
    assert passes_key("m", passes, "c", resolve) != before
    assert passes_key("m", [{"name": "swap", "weights": "none"}], "c", resolve) == \
        passes_key("m", [{"name": "swap", "weights": "none"}], "c", resolve)
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "a.jpg").write_bytes(b"jpeg")
    unlabelled = [{"name": "swap", "unlabelled": "extra"}]
    before = passes_key("m", unlabelled, "c", resolve)
    (extra / "b.jpg").write_bytes(b"more")
    assert passes_key("m", unlabelled, "c", resolve) != before
