"""Recipe and target errors name the file, the line, the key and what is allowed."""

from pathlib import Path

import pytest

from edgecv.config import load_recipe, load_target
from edgecv.config.loader import apply_overrides
from edgecv.errors import ConfigError

GOOD = """\
name: demo
data:
  root: images
model:
  backbone: MobileNetV2
  weights: none
"""


def write(tmp_path: Path, text: str, name: str = "edgecv.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_good_recipe_resolves_paths_relative_to_the_file(tmp_path):
    r = load_recipe(write(tmp_path, GOOD))
    assert r.resolve(r.data.root) == (tmp_path / "images").resolve()
    assert r.input.size == (224, 224) and r.calibration.size == 200


def test_unknown_key_names_file_line_key_and_allowed_keys(tmp_path):
    path = write(tmp_path, GOOD + "train:\n  epochz: 3\n")
    with pytest.raises(ConfigError) as e:
        load_recipe(path)
    msg = str(e.value)
    assert str(path) in msg
    assert "line 8" in msg and "train.epochz" in msg
    assert "unknown key `epochz`" in msg and "warmup" in msg and "batch_size" in msg


def test_wrong_type_and_bad_choice_are_reported_together(tmp_path):
    text = GOOD.replace("  root: images", "  root: images\n  val_fraction: lots") + "input:\n  resize: squash\n"
    with pytest.raises(ConfigError) as e:
        load_recipe(write(tmp_path, text))
    msg = str(e.value)
    assert "2 problem(s)" in msg
    assert "data.val_fraction" in msg and "input.resize" in msg
    assert "center_crop" in msg and "pad" in msg  # the allowed values


def test_data_needs_root_or_train_and_val(tmp_path):
    with pytest.raises(ConfigError, match="give `root`"):
        load_recipe(write(tmp_path, "name: x\ndata:\n  train: a\n"))


def test_missing_required_key(tmp_path):
    with pytest.raises(ConfigError, match="key `data`: required key is missing"):
        load_recipe(write(tmp_path, "name: x\n"))


def test_not_yaml_and_not_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_recipe(write(tmp_path, "name: [unclosed\n"))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_recipe(write(tmp_path, "- a\n- b\n"))


def test_set_overrides_any_field_with_yaml_values(tmp_path):
    r = load_recipe(write(tmp_path, GOOD), ["train.warmup.epochs=1", "input.size=[64, 64]", "model.head.dropout=0.5"])
    assert r.train.warmup.epochs == 1 and r.input.size == (64, 64) and r.model.head.dropout == 0.5


def test_set_override_errors(tmp_path):
    path = write(tmp_path, GOOD)
    with pytest.raises(ConfigError, match="key.path=value"):
        load_recipe(path, ["train.warmup.epochs"])
    with pytest.raises(ConfigError, match="train.warmup.epochs"):
        load_recipe(path, ["train.warmup.epochs=-2"])
    with pytest.raises(ConfigError, match="is a value, not a section"):
        apply_overrides({"name": "x"}, ["name.sub=1"], path)


def test_targets_in_repo_are_valid_and_unknown_target_lists_known():
    for name in ("raspberry-pi-4", "android-arm64", "cloud-tfserving"):
        t = load_target(name)
        assert t.name == name and t.description and t.artifacts
    with pytest.raises(ConfigError) as e:
        load_target("toaster")
    assert "raspberry-pi-4" in str(e.value)


def test_target_rules(tmp_path):
    bad_io = "description: d\nartifacts:\n  - {name: a, format: tflite, precision: fp16, io_dtype: uint8}\n"
    with pytest.raises(ConfigError, match="io_dtype uint8 needs precision int8"):
        load_target(str(write(tmp_path, bad_io, "t.yaml")))
    dupes = "description: d\nartifacts:\n  - {name: a, format: tflite}\n  - {name: a, format: tflite}\n"
    with pytest.raises(ConfigError, match="unique"):
        load_target(str(write(tmp_path, dupes, "t2.yaml")))


def test_artifact_gates_override_target_gates():
    t = load_target("raspberry-pi-4")
    int8, fp32 = t.artifacts
    assert t.gates_for(int8).accuracy_drop_max == 2.0
    assert t.gates_for(int8).accuracy_drop_max_significant == 1.0
    assert t.gates_for(fp32).accuracy_drop_max == 0.5
    assert t.gates_for(fp32).top1_agreement_min == 0.995


def test_plan_rejects_unknown_format_precision_and_pass(tmp_path):
    from edgecv.orchestrator.runner import check_plan

    text = ("description: d\nartifacts:\n  - {name: a, format: tiff}\n  - {name: b, format: savedmodel, precision: int8}\n"
            "  - {name: c, format: tflite, passes: [{name: no-such-pass}]}\n")
    with pytest.raises(ConfigError) as e:
        check_plan([load_target(str(write(tmp_path, text, "t.yaml")))])
    msg = str(e.value)
    assert "unknown artifact format 'tiff'" in msg
    assert "supports precision fp32, not int8" in msg
    assert "unknown pass 'no-such-pass'" in msg


def test_plan_rejects_bad_exporter_options_before_training(tmp_path):
    pytest.importorskip("coremltools")
    from edgecv.orchestrator.runner import check_plan

    text = ("description: d\nartifacts:\n  - {name: a, format: coreml, precision: fp16, "
            "options: {compression: int8, minimum_deployment_target: iOS15}}\n")
    with pytest.raises(ConfigError, match="artifact a: coreml compression int8 .* iOS16"):
        check_plan([load_target(str(write(tmp_path, text, "t.yaml")))])
