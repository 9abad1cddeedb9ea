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
