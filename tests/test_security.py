"""Issue 23, security and exit codes: nothing from an untrusted file runs, nothing outside a folder is
read, written or deleted through a symbolic link, and bad input exits 2 with a message (never 5)."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from edgecv.cli.main import app

SIZE = 16


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def keras():
    from edgecv._keras import keras as k

    return k


def flat_images(folder: Path, count: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def lambda_that_writes(marker: Path):
    """A lambda whose code, once run, leaves `marker` behind (what an attacker's payload would do)."""
    scope: dict = {}
    exec(f"f = lambda t: (open({str(marker)!r}, 'w').write('ran'), t)[1]", scope)
    return scope["f"]


def save_payload_model(path: Path, marker: Path, wrap: bool = False) -> Path:
    k = keras()
    inp = k.Input((SIZE, SIZE, 3))
    layer = k.layers.Lambda(lambda_that_writes(marker), name="payload")
    x = layer(inp)
    x = k.layers.GlobalAveragePooling2D()(k.layers.Conv2D(4, 3)(x))
    k.Model(inp, k.layers.Dense(4, name="embedding")(x)).save(path)
    marker.unlink(missing_ok=True)  # building the model here ran it once
    return path


# ---- item 1: one safe loader -------------------------------------------------------------------
def test_embed_refuses_a_lambda_in_an_h5_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    model = save_payload_model(tmp_path / "m.h5", marker)
    r = invoke("embed", model, "--data", flat_images(tmp_path / "imgs"), "-o", tmp_path / "f.h5")
    assert r.exit_code == 2, r.output
    assert "payload" in r.output and "--unsafe-deserialization" in r.output
    assert not marker.exists()


def test_embed_of_a_keras_file_with_a_lambda_is_bad_input_not_a_bug(tmp_path):
    marker = tmp_path / "pwned"
    model = save_payload_model(tmp_path / "m.keras", marker)
    r = invoke("embed", model, "--data", flat_images(tmp_path / "imgs"), "-o", tmp_path / "f.h5")
    assert r.exit_code == 2, r.output
    assert "payload" in r.output and "Traceback" not in r.output
    assert not marker.exists()


def test_a_lambda_hidden_in_a_wrapper_layer_is_found(tmp_path):
    from edgecv.models.user_model import UnsafeModelError, load_user_model

    k = keras()
    inp = k.Input((2, SIZE, SIZE, 3))
    x = k.layers.TimeDistributed(k.layers.Lambda(lambda t: t * 2.0, name="inner_lambda"))(inp)
    k.Model(inp, x).save(tmp_path / "wrapped.h5")
    with pytest.raises(UnsafeModelError, match="inner_lambda"):
        load_user_model(tmp_path / "wrapped.h5")


def test_a_cached_task_model_goes_through_the_safe_loader(tmp_path):
    """A cache entry someone replaced: its model.h5 holds a Lambda, or model.json names a foreign scope."""
    from edgecv.errors import ConfigError
    from edgecv.models.build import TaskModel

    marker = tmp_path / "pwned"
    folder = tmp_path / "entry"
    folder.mkdir()
    save_payload_model(folder / "model.h5", marker)
    meta = {"task": "embedding", "task_options": {}, "info": {}, "input_size": [SIZE, SIZE],
            "normalization": "none", "backbone": "x", "backbone_layers": [],
            "load_scope": "edgecv.passes.qat:load_scope"}
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="payload"):
        TaskModel.load(folder)
    # a folder given to `embed` cannot grant itself unsafe loading
    (folder / "model.json").write_text(json.dumps({**meta, "unsafe_deserialization": True}))
    r = invoke("embed", folder, "--data", flat_images(tmp_path / "imgs"), "-o", tmp_path / "f.h5")
    assert r.exit_code == 2 and "payload" in r.output, r.output
    (folder / "model.json").write_text(json.dumps({**meta, "load_scope": "os:getcwd"}))
    with pytest.raises(ConfigError, match="not one of edgecv's own"):
        TaskModel.load(folder)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["not a zip", "zip without config", "config not json", "config a list"])
def test_export_of_a_malformed_keras_file_exits_2(tmp_path, damage):
    model = tmp_path / "broken.keras"
    if damage == "not a zip":
        model.write_bytes(os.urandom(256))
    else:
        with zipfile.ZipFile(model, "w") as z:
            if damage == "config not json":
                z.writestr("config.json", "{not json")
            elif damage == "config a list":
                z.writestr("config.json", "[1, 2]")
            else:
                z.writestr("metadata.json", "{}")
    r = invoke("export", model, "-t", "raspberry-pi-4", "--data", flat_images(tmp_path / "imgs"), "--task",
               "generic", "--preprocess", "none", "-o", tmp_path / "out")
    assert r.exit_code == 2, r.output
    assert "broken.keras" in r.output and "Traceback" not in r.output


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory) -> Path:
    """A real, tiny TFLite classifier (16x16 RGB in, 3 scores out)."""
    import tensorflow as tf

    k = keras()
    inp = k.Input((SIZE, SIZE, 3))
    out = k.layers.Dense(3, activation="softmax")(k.layers.GlobalAveragePooling2D()(k.layers.Conv2D(4, 3)(inp)))
    path = tmp_path_factory.mktemp("tflite") / "tiny.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(k.Model(inp, out)).convert())
    return path


# ---- item 6: exit codes and input limits -------------------------------------------------------
REPO = Path(__file__).resolve().parents[1]


def run_cli(*args, cwd=None, timeout=120, memory_gb=3):
    """The real `edgecv` in a child process with an address-space cap (a runaway input is stopped,
    not left to eat the machine's memory)."""
    import resource
    import subprocess
    import sys

    def cap():
        limit = memory_gb << 30
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH") or str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "edgecv.cli.main", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env, preexec_fn=cap)


def test_a_recipe_that_is_not_utf8_is_bad_input(tmp_path):
    recipe = tmp_path / "edgecv.yaml"
    recipe.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    r = invoke("build", "-t", "raspberry-pi-4", "-r", recipe, "-o", tmp_path / "out", "--dry-run")
    assert r.exit_code == 2, r.output
    assert "not UTF-8" in r.output and "edgecv.yaml" in r.output


ALIAS_BOMB = "name: bomb\ntask_options:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 10))


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path):
    import time

    recipe = tmp_path / "edgecv.yaml"
    recipe.write_text(ALIAS_BOMB + "data: {root: images}\n")
    t0 = time.monotonic()
    try:
        r = run_cli("build", "-t", "raspberry-pi-4", "-r", recipe, "-o", tmp_path / "out", "--dry-run", timeout=90)
    except Exception as e:  # the timeout: it expanded the bomb
        pytest.fail(f"the alias bomb was not refused: {e}")
    assert r.returncode == 2, r.stderr[-2000:]
    assert "aliases" in r.stderr and time.monotonic() - t0 < 60


def test_yaml_limits_in_the_loader(tmp_path):
    from edgecv.config import load_recipe
    from edgecv.errors import InputError

    deep = tmp_path / "deep.yaml"
    deep.write_text("name: deep\ntask_options: {x: " + "[" * 200 + "]" * 200 + "}\n")
    with pytest.raises(InputError, match="nested"):
        load_recipe(deep)
    big = tmp_path / "big.yaml"
    big.write_text("name: big\n# " + "x" * (2 << 20) + "\n")
    with pytest.raises(InputError, match="limit"):
        load_recipe(big)
    loop = tmp_path / "loop.yaml"
    loop.write_text("name: loop\ntask_options: &t {x: *t}\n")
    with pytest.raises(InputError, match="contains it"):
        load_recipe(loop)


def report_folder(tmp_path) -> Path:
    folder = tmp_path / "build" / "raspberry-pi-4"
    folder.mkdir(parents=True)
    (folder / "report.json").write_bytes((REPO / "tests/data/report_v2_flowers_raspberry-pi-4.json").read_bytes())
    return folder / "report.json"


def bench_result_for(report: Path) -> dict:
    art = json.loads(report.read_text())["artifacts"][0]
    return {"schema": "edgecv.bench/1", "artifact": {"name": "x.tflite", "sha256": art["sha256"]},
            "latency": {"p50_ms": 3.0, "p90_ms": 4.0}, "latency_by_batch": [], "device": {"cpu": "arm"}}


@pytest.mark.parametrize("field,value", [("artifact", {"name": "x", "sha256": 123}), ("latency", "fast"),
                                         ("latency", {"p50_ms": "3"}), ("accuracy", {"top1": [1]}),
                                         ("device", ["pi"]), ("metrics", {"accuracy": "high"}),
                                         ("latency_by_batch", [{"p50_ms": True}])])
def test_report_merge_refuses_wrongly_typed_fields_and_leaves_the_report(tmp_path, field, value):
    report = report_folder(tmp_path)
    before = report.read_bytes()
    res = bench_result_for(report)
    res[field] = value
    (tmp_path / "res.json").write_text(json.dumps(res))
    r = invoke("report", report, "--merge", tmp_path / "res.json")
    assert r.exit_code == 2, r.output
    assert field in r.output and "Traceback" not in r.output
    assert report.read_bytes() == before


@pytest.mark.parametrize("command", ["merge", "gate"])
def test_deeply_nested_json_is_bad_input(tmp_path, command):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    report = report_folder(tmp_path)
    args = ["report", report, "--merge", deep] if command == "merge" else ["gate", "--report", deep, "--baseline", report]
    r = invoke(*args)
    assert r.exit_code == 2, r.output
    assert "deep.json" in r.output and "nested" in r.output


@pytest.mark.parametrize("args,word", [(["--batch", "-1"], "--batch"), (["--batch", "0"], "--batch"),
                                       (["--threads", "0"], "--threads"), (["--threads", "-4"], "--threads"),
                                       (["--runs", "0"], "--runs")])
def test_bench_options_are_validated(tiny_tflite, args, word):
    r = invoke("bench", tiny_tflite, "--random", "--runs", "2", "--seconds", "0", *args)
    assert r.exit_code == 2, r.output
    assert word in r.output


def test_a_build_refused_by_the_lock_leaves_the_running_builds_log_alone(tmp_path, tiny_recipe_path):
    import subprocess
    import sys

    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom edgecv.orchestrator.lock import BuildLock\n"
                               f"with BuildLock({str(out)!r}):\n    print('held', flush=True)\n    time.sleep(60)\n"],
                              stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH") or str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "held"
        (out / "build.log").write_text("the running build's log\n")
        r = invoke("build", "-t", "raspberry-pi-4", "-r", tiny_recipe_path, "-o", out)
        assert r.exit_code == 2 and "is being built by" in r.output, r.output
        assert (out / "build.log").read_text() == "the running build's log\n"
    finally:
        holder.kill()
        holder.wait()


SLOW_TARGET = """
import sys, time
from edgecv.cli.main import app
from edgecv.orchestrator import runner
from edgecv.orchestrator.stages import target

def run(self, wait_seconds=0.0, held=None):  # straight to writing the target folder, which then takes a while
    target.run(self.ctx, self.graph.target_step(self.targets[0]), None)

def slow(ctx, step, inputs, staging, *args):
    (staging / "half-written.tflite").write_bytes(b"x")
    time.sleep(60)

runner.Build.run = run
target.build_into = slow
sys.exit(app(["build", "-t", "raspberry-pi-4", "-r", sys.argv[1], "-o", sys.argv[2]]))
"""


def test_sigterm_cleans_up_like_ctrl_c(tmp_path, tiny_recipe_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_TARGET, str(tiny_recipe_path), str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH") or str(REPO)})
    try:
        deadline = time.monotonic() + 60
        while not (out / ".raspberry-pi-4.staging" / "half-written.tflite").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-2000:]
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 143, err[-2000:]
    assert "terminated" in err
    assert not (out / ".raspberry-pi-4.staging").exists() and not (out / "raspberry-pi-4").exists()


# ---- item 3: nothing deleted or written through a link -----------------------------------------
def test_clean_does_not_prune_through_a_cache_link(tmp_path):
    from edgecv.build_folder import BUILD_MARKER

    other = tmp_path / "other-tools-cache"
    (other / "export" / "entry").mkdir(parents=True)
    (other / "export" / "entry" / "data.bin").write_bytes(b"keep me")
    out = tmp_path / "build"
    out.mkdir()
    (out / BUILD_MARKER).write_text("edgecv build folder\n")
    (out / ".cache").symlink_to(other)
    r = invoke("clean", "-o", out, "--all")
    assert r.exit_code == 2, r.output
    assert "symbolic link" in r.output
    assert (other / "export" / "entry" / "data.bin").read_bytes() == b"keep me"


def test_a_linked_target_folder_is_refused_before_building(tmp_path, tiny_recipe_path, monkeypatch):
    from edgecv.orchestrator.stages import index as index_stage

    served = tmp_path / "served" / "current"
    served.mkdir(parents=True)
    (served / "manifest.json").write_text("{}")
    (served / "model.tflite").write_bytes(b"the served model")
    out = tmp_path / "out"
    out.mkdir()
    (out / "raspberry-pi-4").symlink_to(served)
    monkeypatch.setattr(index_stage, "run", lambda *step: pytest.fail("the build started before refusing the link"))
    r = invoke("build", "-t", "raspberry-pi-4", "-r", tiny_recipe_path, "-o", out)
    assert r.exit_code == 2, r.output
    assert "symbolic link" in r.output and "ln -sfn" in r.output
    assert sorted(p.name for p in served.iterdir()) == ["manifest.json", "model.tflite"]
    assert (out / "raspberry-pi-4").is_symlink()


def test_a_build_does_not_write_its_cache_through_a_link(tmp_path, tiny_recipe_path, monkeypatch):
    from edgecv.orchestrator.stages import index as index_stage

    other = tmp_path / "other-tools-cache"
    other.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / ".cache").symlink_to(other)
    monkeypatch.setattr(index_stage, "run", lambda *step: pytest.fail("the build started before refusing the link"))
    r = invoke("build", "-t", "raspberry-pi-4", "-r", tiny_recipe_path, "-o", out)
    assert r.exit_code == 2, r.output
    assert "symbolic link" in r.output and not any(other.iterdir())


def test_a_staging_name_taken_by_a_link_is_not_written_through(tmp_path):
    from edgecv.orchestrator import publish

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("x")
    out = tmp_path / "out"
    out.mkdir()
    publish.staging_path(out, "t").symlink_to(victim)
    staging = publish.start(out, "t")
    assert staging.is_dir() and not staging.is_symlink()
    assert sorted(p.name for p in victim.iterdir()) == ["keep.txt"]


def test_build_log_is_not_written_through_a_link(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "build.log").symlink_to(victim)
    r = invoke("build", "-t", "no-such-target", "-r", tmp_path / "edgecv.yaml", "-o", out)
    assert r.exit_code == 2, r.output
    assert victim.read_text() == "precious\n"


@pytest.mark.parametrize("command", ["validate", "bench"])
def test_validate_and_bench_do_not_log_to_a_fixed_temp_name(tmp_path, tiny_tflite, monkeypatch, command):
    import tempfile

    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (temp / f"edgecv-{command}.log").symlink_to(victim)  # planted by another local user
    images = flat_images(tmp_path / "imgs")
    args = ["--data", images] if command == "validate" else ["--random", "--runs", "2", "--seconds", "0"]
    r = invoke(command, tiny_tflite, *args)
    assert r.exit_code == 0, r.output
    assert victim.read_text() == "precious\n"
    assert [p.name for p in temp.iterdir()] == [f"edgecv-{command}.log"]  # its own private log is gone


@pytest.mark.parametrize("field,value", [("schema_version", None), ("schema_version", "2"), ("artifacts", [1])])
def test_gate_refuses_a_report_with_a_field_of_another_type(tmp_path, field, value):
    """Found by the property test of the report reader."""
    report = report_folder(tmp_path)
    doc = json.loads(report.read_text())
    doc[field] = value
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    r = invoke("gate", "--report", bad, "--baseline", report)
    assert r.exit_code == 2, r.output
    assert "bad.json" in r.output


def test_build_with_a_malformed_device_is_refused_before_building(tmp_path, tiny_recipe_path):
    r = invoke("build", "-t", "raspberry-pi-4", "-r", tiny_recipe_path, "-o", tmp_path / "out", "--device", "no-user")
    assert r.exit_code == 2 and "user@host" in r.output, r.output
    assert not (tmp_path / "out" / "raspberry-pi-4").exists()
