"""Fault injection (issue 15): damaged cache entries, builds killed at every stage boundary and while
writing a target folder, read-only and full disks, odd file names, path-escaping names, failed
training, `gate` misuse, exit codes, label offsets and any-size inputs.

One tiny build (TinyCNN, 3 synthetic classes) is made once; each test works on a copy of it. After
every test, every target folder of every build folder under the test's tmp_path must match its
manifest (the folder-consistency check).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from edgecv.build_folder import BUILD_MARKER, INCOMPLETE, folder_problems
from edgecv.cli.main import app
from edgecv.orchestrator.runner import load_build, run_build
from synthetic import make_image_folder, write_recipe

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
TARGET = ("description: fault tests\nruntime: {threads: 1}\nartifacts:\n  - {name: int8, format: tflite, precision: int8}\n"
          "  - {name: fp32, format: tflite}\ngates: {accuracy_drop_max: 50.0}\n")


def console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=200), buf


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    data = make_image_folder(root / "images", classes=3, per_class=12)
    recipe = write_recipe(root / "edgecv.yaml", data, train__finetune__epochs=2)
    target = root / "tiny.yaml"
    target.write_text(TARGET)
    return root, recipe, target


@pytest.fixture(scope="module")
def base_build(project):
    """A complete build (trained once for the module); tests copy it."""
    root, recipe, target = project
    out = root / "base"
    result = run_build(recipe, [str(target)], out, console=console()[0])
    assert result.exit_code == 0, result.outcomes
    return out


@pytest.fixture
def built(base_build, tmp_path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(base_build, out, symlinks=True)
    return out


@pytest.fixture(autouse=True)
def folder_consistency_check(tmp_path):
    """After every test: each target folder of each build folder under tmp_path matches its manifest."""
    yield
    for marker in tmp_path.rglob(BUILD_MARKER):
        for folder in marker.parent.iterdir():
            if folder.is_dir() and not folder.name.startswith("."):
                assert folder_problems(folder) == [], folder


def artifact_hashes(target_dir: Path) -> dict:
    return {a["name"]: a["sha256"] for a in json.loads((target_dir / "manifest.json").read_text())["artifacts"]}


def no_traceback(r) -> None:
    assert "Traceback" not in r.output, r.output


# ---- 1. damaged cache entries are recomputed, never published -------------------------------------------
@pytest.mark.parametrize("stage,file", [("index", "index.json"), ("train", "model/model.keras"),
                                        ("reference", "reference.npz"), ("export", "tiny_int8.tflite"),
                                        ("validate", "validation.json"), ("export", ".complete")])
def test_a_damaged_cache_entry_is_recomputed_and_said_so(project, built, base_build, stage, file):
    _, recipe, target = project
    damaged = next(p for p in (built / ".cache" / stage).glob(f"*/{file}"))
    if file == ".complete":  # an entry without content hashes (an older edgecv, or a damaged record)
        damaged.write_text(damaged.parent.name)
    else:
        damaged.write_bytes(damaged.read_bytes()[: max(1, damaged.stat().st_size // 2)])
    con, buf = console()
    result = run_build(recipe, [str(target)], built, console=con)
    assert result.exit_code == 0, buf.getvalue()
    key = damaged.relative_to(built / ".cache" / stage).parts[0]
    assert f"cache entry {stage}/{key[:12]} is damaged" in buf.getvalue()
    assert [e.stage for e in result.rejected] == [stage] and result.ran(stage)
    assert "recomputed damaged" in result.cache_summary() and "reused" in result.cache_summary()
    assert artifact_hashes(built / "tiny") == artifact_hashes(base_build / "tiny")  # the good files, not the damaged
    again = run_build(recipe, [str(target)], built, console=console()[0])
    assert again.rejected == [] and [s for s in again.stages if not s.hit] == []  # repaired for good


def test_diagnose_does_not_load_a_damaged_model(built):
    model = next((built / ".cache" / "train").glob("*/model/model.keras"))
    model.write_bytes(b"garbage")
    r = runner.invoke(app, ["diagnose", str(built / "tiny" / "tiny_int8.tflite")])
    assert r.exit_code == 2 and "no longer (intact)" in r.output
    no_traceback(r)


# ---- 2. clean touches only folders edgecv made ---------------------------------------------------------
def test_clean_refuses_a_folder_edgecv_did_not_make(tmp_path):
    home = tmp_path / "home"
    (home / ".cache" / "pip" / "wheels").mkdir(parents=True)
    (home / ".cache" / "pip" / "wheels" / "x.whl").write_text("keep me")
    r = runner.invoke(app, ["clean", "-o", str(home), "--all"])
    assert r.exit_code == 2 and BUILD_MARKER in r.output and "nothing removed" in r.output
    assert (home / ".cache" / "pip" / "wheels" / "x.whl").is_file() and not (home / ".lock").exists()
    no_traceback(r)


def test_clean_removes_staging_folders_and_unused_entries_of_a_build(built):
    (built / ".tiny.staging").mkdir()
    (built / ".tiny.staging" / INCOMPLETE).write_text("")
    r = runner.invoke(app, ["clean", "-o", str(built)])
    assert r.exit_code == 0 and "removed 1 cache entry" in r.output and not (built / ".tiny.staging").exists()


# ---- 3. SIGKILL at every stage boundary and while writing the target folder -----------------------------
KILLER = """
import os, signal, sys
from edgecv.orchestrator import context, publish
from edgecv.orchestrator.stages import export
where = os.environ["KILL_AT"]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if where.startswith("after:"):  # right after a stage completed its cache entry
    record = context.StageContext.record
    def killing_record(self, stage, key, hit, *a, **k):
        record(self, stage, key, hit, *a, **k)
        if stage == where[6:] and not hit:
            die()
    context.StageContext.record = killing_record
elif where == "publishing":  # the staging folder half written: one artifact copied
    publish_files = export.publish_entry
    def killing_publish(*a):
        publish_files(*a)
        die()
    export.publish_entry = killing_publish
elif where == "swapping":  # manifest written, marker removed, not yet swapped
    publish._exchange = lambda a, b: die()
from edgecv.cli.main import app
app(sys.argv[1:])
"""


def _run(args, kill_at=None, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(REPO), **({"KILL_AT": kill_at} if kill_at else {})}
    cmd = [sys.executable, "-c", KILLER, *args] if kill_at else [sys.executable, "-m", "edgecv.cli.main", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_sigkill_at_every_stage_boundary_and_mid_folder_never_mixes_two_builds(project, built):
    """A class is added, then each rebuild is killed one step further; the target folder stays the
    previous complete build until the one that finishes swaps in the new one whole."""
    root, recipe, target = project
    data = Path(json.loads((built / "tiny" / "manifest.json").read_text())["recipe_dir"]) / "images"
    added = make_image_folder(built.parent / "more", classes=4, per_class=12, seed=1) / "class_3"
    recipe4 = write_recipe(built.parent / "edgecv.yaml", built.parent / "data4", train__finetune__epochs=2)
    shutil.copytree(data, built.parent / "data4")
    shutil.copytree(added, built.parent / "data4" / "class_3")
    old = artifact_hashes(built / "tiny")
    args = ["build", "-t", str(target), "-r", str(recipe4), "-o", str(built)]
    for kill_at in ("after:index", "after:train", "after:reference", "after:export", "after:validate",
                    "publishing", "swapping"):
        proc = _run(args, kill_at)
        assert proc.returncode == -signal.SIGKILL, (kill_at, proc.stderr[-3000:])
        assert (built / "tiny" / "labels.txt").read_text().splitlines() == ["class_0", "class_1", "class_2"], kill_at
        assert folder_problems(built / "tiny") == [] and artifact_hashes(built / "tiny") == old, kill_at
        for entry in (built / ".cache").glob("*/*"):
            assert (entry / ".complete").is_file() or entry.name.endswith(".tmp"), entry
    staging = built / ".tiny.staging"  # left by the last kill; the next build starts it afresh

    resumed = _run(args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "stages run: none" in resumed.stderr and "cache: reused" in resumed.stderr  # all from verified entries
    assert (built / "tiny" / "labels.txt").read_text().splitlines() == [f"class_{i}" for i in range(4)]
    assert artifact_hashes(built / "tiny") != old and not staging.exists()


def test_validate_bench_and_gate_refuse_an_incomplete_folder(built):
    staging = built / ".tiny.staging"
    shutil.copytree(built / "tiny", staging)
    (staging / INCOMPLETE).write_text("")
    for args in (["validate", str(staging / "tiny_fp32.tflite"), "--data", str(built)],
                 ["bench", str(staging / "tiny_fp32.tflite"), "--random"],
                 ["gate", "--report", str(staging / "report.json"), "--baseline", str(built / "tiny" / "report.json")]):
        r = runner.invoke(app, args)
        assert r.exit_code == 2 and "incomplete" in r.output, (args, r.output)
        no_traceback(r)


def test_validate_warns_when_a_folder_no_longer_matches_its_manifest(built, project):
    root, _, _ = project
    labels = built / "tiny" / "labels.txt"
    original = labels.read_text()
    labels.write_text(original.replace("\n", "\r\n"))  # the same labels, other bytes
    try:
        r = runner.invoke(app, ["validate", str(built / "tiny" / "tiny_fp32.tflite"), "--data", str(root / "images")])
        assert r.exit_code == 0 and "labels.txt differs from the file the build wrote" in r.output
    finally:
        labels.write_text(original)


# ---- 4. read-only and full disks (small tmpfs mounts) ----------------------------------------------------
@pytest.fixture
def mount(tmp_path):
    """mount(size_kb, read_only=False) -> a fresh tmpfs folder; unmounted after the test."""
    mounted = []

    def make(size_kb: int, read_only: bool = False) -> Path:
        where = tmp_path / f"mnt{len(mounted)}"
        where.mkdir()
        opts = f"size={size_kb}k" + (",ro" if read_only else "")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True, text=True)
        if r.returncode:
            pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {r.stderr.strip()}")
        mounted.append(where)
        return where

    yield make
    for m in mounted:
        subprocess.run(["umount", "-l", str(m)], capture_output=True)


def test_read_only_out_folder_is_a_clear_error(project, mount):
    _, recipe, target = project
    ro = mount(64, read_only=True)
    r = runner.invoke(app, ["build", "-t", str(target), "-r", str(recipe), "-o", str(ro)])
    assert r.exit_code == 2 and "read-only" in r.output
    no_traceback(r)


def test_bench_json_and_update_baseline_to_a_read_only_path_fail_before_measuring(built, mount):
    ro = mount(64, read_only=True)
    r = runner.invoke(app, ["bench", str(built / "tiny" / "tiny_fp32.tflite"), "--random", "--runs", "3",
                            "--seconds", "0", "--json", str(ro / "pi.json")])
    assert r.exit_code == 2 and "read-only" in r.output and "p50" not in r.output
    r = runner.invoke(app, ["gate", "--report", str(built / "tiny" / "report.json"), "--baseline", str(ro / "b.json"),
                            "--update-baseline"])
    assert r.exit_code == 2 and "read-only" in r.output
    no_traceback(r)


def test_disk_full_mid_build_keeps_the_previous_target_folder(project, built, mount):
    _, recipe, target = project
    size_kb = sum(f.stat().st_size for f in built.rglob("*") if f.is_file()) // 1024 + 200
    small = mount(size_kb)
    out = small / "out"
    shutil.copytree(built, out)
    old = artifact_hashes(out / "tiny")
    r = runner.invoke(app, ["build", "-t", str(target), "-r", str(recipe), "-o", str(out), "--force", "export",
                            "--force", "validate"])
    assert r.exit_code == 3 and "disk full while writing" in r.output, r.output
    no_traceback(r)
    assert folder_problems(out / "tiny") == [] and artifact_hashes(out / "tiny") == old
    assert not (out / ".tiny.staging").exists()


# ---- 5. training failures ------------------------------------------------------------------------------
def test_a_failed_training_runs_once_for_every_artifact_and_target(project, tmp_path, monkeypatch):
    import errno

    import edgecv.train.trainer as trainer

    _, recipe, target = project
    calls = []

    def full_disk(*a, **k):
        calls.append(1)
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "model.keras"))

    monkeypatch.setattr(trainer, "train", full_disk)
    other = tmp_path / "other.yaml"
    other.write_text(TARGET)
    con, buf = console()
    result = run_build(recipe, [str(target), str(other)], tmp_path / "out", console=con)
    assert len(calls) == 1 and result.exit_code == 3
    assert [o.status for o in result.outcomes] == ["failed", "failed"]
    assert all("disk full while writing" in o.messages[0] for o in result.outcomes)
    assert not (tmp_path / "out" / "tiny").exists()


def test_a_class_without_training_images_is_an_error_before_training(tmp_path):
    data = make_image_folder(tmp_path / "images", classes=3, per_class=12)
    for f in sorted((data / "class_2").iterdir())[2:]:
        f.unlink()
    recipe = write_recipe(tmp_path / "edgecv.yaml", data, data__val_fraction=0.8)
    r = runner.invoke(app, ["build", "-t", "raspberry-pi-4", "-r", str(recipe), "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "class_2 have 0 training images" in r.output and "val_fraction" in r.output
    no_traceback(r)


def test_a_calibration_size_cut_to_the_training_split_is_said(project, tmp_path):
    _, recipe, _ = project
    con, buf = console()
    load_build(recipe, [], tmp_path / "out", ["calibration.size=1000"], con).run()
    assert "not calibration.size 1000" in buf.getvalue()


# ---- 6. odd file names ---------------------------------------------------------------------------------
def test_unusable_file_names_are_skipped_and_listed(tmp_path):
    from edgecv.config import load_recipe
    from edgecv.data.index import build_index

    data = make_image_folder(tmp_path / "images", classes=2, per_class=6)
    good = (data / "class_0" / "000.png").read_bytes()
    with open(os.fsencode(data / "class_0") + b"/caf\xe9.png", "wb") as f:
        f.write(good)
    os.symlink("loop.png", data / "class_0" / "loop.png")
    os.symlink(tmp_path / "nowhere.png", data / "class_1" / "broken.png")
    os.symlink(data, data / "class_1" / "up")  # a link to a parent inside a class: not followed
    recipe = write_recipe(tmp_path / "edgecv.yaml", data)
    r = runner.invoke(app, ["build", "-t", "raspberry-pi-4", "-r", str(recipe), "-o", str(tmp_path / "o"), "--dry-run"])
    assert r.exit_code == 0, r.output
    rec = load_recipe(recipe)
    index = build_index(rec.data, rec.resolve)
    reasons = {Path(s.path).name: s.reason for s in index.skipped}
    assert "not valid UTF-8" in reasons["caf\ufffd.png"]
    assert reasons["loop.png"] == "symbolic link loop" and "broken symbolic link" in reasons["broken.png"]
    assert len(index.train) + len(index.val) == 12  # the linked parent was not pulled in


@pytest.mark.parametrize("name,why", [("root", "contains the data folder"), ("bad\nname", "control character"),
                                      (b"caf\xe9", "not valid UTF-8")])
def test_unusable_class_folders_stop_the_build_with_a_reason(tmp_path, name, why):
    data = make_image_folder(tmp_path / "images", classes=2, per_class=4)
    if name == "root":
        os.symlink("/", data / "root")
    else:
        dest = os.fsencode(data) + b"/" + (name if isinstance(name, bytes) else name.encode())
        shutil.copytree(data / "class_0", os.fsdecode(dest))
    recipe = write_recipe(tmp_path / "edgecv.yaml", data)
    r = runner.invoke(app, ["build", "-t", "raspberry-pi-4", "-r", str(recipe), "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and why in r.output, r.output
    no_traceback(r)


# ---- 7. path-escaping names ----------------------------------------------------------------------------
@pytest.mark.parametrize("where,name", [("target", "../../escaped"), ("target", ".cache"), ("artifact", ".."),
                                        ("artifact", "a/b"), ("recipe", "../up")])
def test_names_that_would_escape_the_build_folder_are_refused(project, tmp_path, where, name):
    _, recipe, _ = project
    target = tmp_path / "t.yaml"
    art_name = name if where == "artifact" else "x"
    target.write_text(f"description: d\nartifacts:\n  - {{name: '{art_name}', format: tflite}}\n"
                      + (f"name: '{name}'\n" if where == "target" else ""))
    sets = ["--set", f"name={name}"] if where == "recipe" else []
    out = tmp_path / "deep" / "out"
    r = runner.invoke(app, ["build", "-t", str(target), "-r", str(recipe), "-o", str(out), *sets])
    assert r.exit_code == 2 and "cannot be a file name" in r.output, r.output
    assert not (tmp_path / "escaped").exists() and not (out / ".cache").exists()


# ---- 8. gate misuse ------------------------------------------------------------------------------------
@pytest.mark.parametrize("baseline,why", [
    ("other_target", "gate each target against its own baseline"), ("empty_dict", "not an edgecv report.json"),
    ("no_artifacts", "lists no artifacts"), ("bench", "is an `edgecv bench --json` result"),
    ("malformed", "not valid JSON (line 1"), ("missing", "not found")])
def test_gate_refuses_a_baseline_it_cannot_compare_with(built, tmp_path, baseline, why):
    report = json.loads((built / "tiny" / "report.json").read_text())
    path = tmp_path / "baseline.json"
    content = {"other_target": {**report, "target": {**report["target"], "name": "jetson"}}, "empty_dict": {},
               "no_artifacts": {**report, "artifacts": []},
               "bench": {"schema": "edgecv.bench/1", "artifact": {"name": "x", "sha256": "0"}}}.get(baseline)
    if content is not None:
        path.write_text(json.dumps(content))
    elif baseline == "malformed":
        path.write_text("{not json")
    r = runner.invoke(app, ["gate", "--report", str(built / "tiny" / "report.json"), "--baseline", str(path)])
    assert r.exit_code == 2 and why in r.output, r.output
    no_traceback(r)


def test_gate_against_its_own_report_passes(built):
    r = runner.invoke(app, ["gate", "--report", str(built / "tiny" / "report.json"), "--baseline",
                            str(built / "tiny" / "report.json")])
    assert r.exit_code == 0 and " 0 failed" in r.output and not r.output.startswith("0 passed")


# ---- 9. exit codes: usage and input errors are 2, never 1 or 3; tracebacks only with --debug ----------
def test_usage_and_input_errors_exit_2_without_a_traceback(built, project, tmp_path):
    _, recipe, _ = project
    not_a_model = tmp_path / "notes.tflite"
    not_a_model.write_text("hello")
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("[1,")
    report = str(built / "tiny" / "report.json")
    cases = {
        "build without a target": (["build", "-r", str(recipe), "-o", str(tmp_path / "o")], "--target"),
        "bench without inputs": (["bench", str(built / "tiny" / "tiny_fp32.tflite")], "--random"),
        "report of a missing file": (["report", str(tmp_path / "none" / "report.json")], "not found"),
        "report of malformed JSON": (["report", str(bad_json)], "not valid JSON"),
        "report --merge malformed": (["report", report, "--merge", str(bad_json)], "not valid JSON"),
        "report --merge missing": (["report", report, "--merge", str(tmp_path / "none.json")], "not found"),
        "diagnose a float model": (["diagnose", str(built / "tiny" / "tiny_fp32.tflite")], "is fp32"),
        "validate a non-model file": (["validate", str(not_a_model), "--data", str(tmp_path)], str(not_a_model)),
        "validate a missing file": (["validate", str(tmp_path / "no.tflite"), "--data", str(tmp_path)], "no such"),
    }
    for what, (args, said) in cases.items():
        r = runner.invoke(app, args)
        assert r.exit_code == 2 and said in r.output, (what, r.exit_code, r.output)
        no_traceback(r)


def test_an_internal_error_exits_5_with_its_traceback_only_under_debug(built, monkeypatch):
    import edgecv.validate.bench as bench

    def bug(*a, **k):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(bench, "bench", bug)
    args = ["bench", str(built / "tiny" / "tiny_fp32.tflite"), "--random"]
    r = runner.invoke(app, args)
    assert r.exit_code == 5 and "--debug" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["--debug", *args])
    assert r.exit_code == 5 and "Traceback" in r.output and "ZeroDivisionError" in r.output


# ---- 10. validate never shifts labels silently ---------------------------------------------------------
@pytest.mark.parametrize("lines,offset,said", [(4, None, "4 lines but the model has 3 outputs"),
                                             (2, None, "2 lines but the model has 3 outputs"), (4, 1, 1), (3, None, 0)])
def test_validate_shifts_labels_only_when_told(built, project, tmp_path, lines, offset, said):
    root, _, _ = project
    labels = tmp_path / "labels.txt"
    names = ["class_0", "class_1", "class_2"]
    labels.write_text("\n".join((["background"] if lines == 4 else []) + names[: min(lines, 3)]) + "\n")
    args = ["validate", str(built / "tiny" / "tiny_fp32.tflite"), "--data", str(root / "images"), "--labels",
            str(labels), "--json", str(tmp_path / "r.json")] + (["--label-offset", str(offset)] if offset else [])
    r = runner.invoke(app, args)
    if isinstance(said, str):
        assert r.exit_code == 2 and said in r.output, r.output
    else:
        assert r.exit_code == 0, r.output
        result = json.loads((tmp_path / "r.json").read_text())
        assert result["offset"] == said and result["accuracy"] > 50


def test_the_imagenet_labels_file_with_background_is_the_only_automatic_offset():
    from edgecv.errors import DataError
    from edgecv.tasks.classification_folder import label_offset

    assert label_offset(1001, 1000, None) == 1 and label_offset(10, 10, None) == 0
    with pytest.raises(DataError, match="11 lines but the model has 10 outputs"):
        label_offset(11, 10, None)


# ---- 11. bench on models that accept any input size, or a fixed batch ----------------------------------
def _onnx_model(path: Path, dims: list) -> Path:
    """A tiny ONNX model: mean over height and width of NHWC float pixels."""
    import onnx
    from onnx import TensorProto, helper

    axes = helper.make_tensor("axes", TensorProto.INT64, [2], [1, 2])
    node = helper.make_node("ReduceMean", ["image", "axes"], ["mean"], keepdims=0)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("image", TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info("mean", TensorProto.FLOAT, [dims[0], 3])], [axes])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8), path)
    return path


def test_bench_asks_for_the_size_of_an_any_size_onnx_model(tmp_path):
    pytest.importorskip("onnxruntime")
    model = _onnx_model(tmp_path / "any.onnx", ["N", "height", "width", 3])
    quick = ["--runs", "3", "--seconds", "0"]
    r = runner.invoke(app, ["bench", str(model), "--random", *quick])
    assert r.exit_code == 2 and "--input-size" in r.output
    no_traceback(r)
    r = runner.invoke(app, ["bench", str(model), "--random", "--input-size", "24x20", *quick, "--json",
                            str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "r.json").read_text())["input_size"] == [24, 20]


def test_bench_reads_the_size_from_the_build_sidecar(tmp_path, built):
    """An any-size TFLite model in a build folder is timed at preprocessing.json's size, not 1x1."""
    from edgecv._keras import keras
    import tensorflow as tf

    inp = keras.Input((None, None, 3))
    model = keras.Model(inp, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(inp)))
    folder = built / "tiny"
    path = folder / "any.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    try:
        r = runner.invoke(app, ["bench", str(path), "--random", "--runs", "3", "--seconds", "0", "--json",
                                str(tmp_path / "r.json")])
        assert r.exit_code == 0, r.output
        assert json.loads((tmp_path / "r.json").read_text())["input_size"] == [32, 32]
    finally:
        path.unlink()


def test_bench_on_a_fixed_batch_model_names_the_batch_to_use(tmp_path):
    pytest.importorskip("onnxruntime")
    model = _onnx_model(tmp_path / "b4.onnx", [4, 16, 16, 3])
    r = runner.invoke(app, ["bench", str(model), "--random", "--runs", "3", "--seconds", "0"])
    assert r.exit_code == 2 and "fixed batch size of 4: run with --batch 4" in r.output
    r = runner.invoke(app, ["bench", str(model), "--random", "--batch", "4", "--runs", "3", "--seconds", "0"])
    assert r.exit_code == 0, r.output


def test_a_fixed_batch_model_predicts_any_number_of_images(tmp_path):
    pytest.importorskip("onnxruntime")
    from edgecv.runtimes import load_runtime

    images = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    with load_runtime(_onnx_model(tmp_path / "b4.onnx", [4, 16, 16, 3])) as rt:
        out = rt.predict(images)["mean"]
    np.testing.assert_allclose(out, images.astype(np.float32).mean(axis=(1, 2)), rtol=1e-5)
