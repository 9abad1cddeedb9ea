"""Command-line conventions: --version, -h, help on every option, flags shown as flags, `--set`
errors naming the override, YAML 1.2 values, close-match suggestions, format aliases, and
`passes -v` without TensorFlow."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import edgecv
from edgecv.cli.main import app
from edgecv.config import load_recipe, load_target
from edgecv.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _commands(cmd, prefix=()):
    if hasattr(cmd, "commands"):
        for name, sub in cmd.commands.items():
            yield from _commands(sub, (*prefix, name))
    else:
        yield prefix, cmd


def test_version_and_short_help():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.stdout.strip() == f"edgecv {edgecv.__version__}"
    r = runner.invoke(app, ["build", "-h"])
    assert r.exit_code == 0 and "--target" in r.stdout
    r = runner.invoke(app, ["engine", "build", "-h"])
    assert r.exit_code == 0


def test_every_option_has_help_and_flags_take_no_value():
    missing = []
    for path, cmd in _commands(typer.main.get_command(app)):
        assert cmd.help, f"{' '.join(path)} has no help"
        for p in cmd.params:
            if p.param_type_name == "option" and not p.help:
                missing.append(f"{' '.join(path)} {p.opts[0]}")
    assert missing == []
    r = runner.invoke(app, ["bench", "--help"], terminal_width=120)
    assert "--random" in r.stdout and "<bool>" not in r.stdout


def test_set_values_follow_yaml_1_2(tiny_recipe_path):
    recipe = load_recipe(tiny_recipe_path, ["name=no", "train.seed=012"])
    assert recipe.name == "no" and recipe.train.seed == 12  # YAML 1.1 would give False and 10
    assert load_recipe(tiny_recipe_path, ["train.deterministic=false"]).train.deterministic is False


def test_set_errors_name_the_override_not_a_recipe_line(tiny_recipe_path):
    with pytest.raises(ConfigError) as e:
        load_recipe(tiny_recipe_path, ["train.warmup.epochs=many"])
    assert "--set train.warmup.epochs=many" in str(e.value) and not re.search(r"line \d", str(e.value))
    with pytest.raises(ConfigError) as e:
        load_recipe(tiny_recipe_path, ["train.warmpu.epochs=1"])
    assert "did you mean `warmup`" in str(e.value)


def test_misspelt_names_get_a_close_match(tiny_recipe_path):
    r = runner.invoke(app, ["build", "-t", "raspbery-pi-4", "-r", str(tiny_recipe_path), "--dry-run",
                            "-o", str(tiny_recipe_path.parent / "b")])
    assert r.exit_code == 2 and "did you mean `raspberry-pi-4`" in r.output
    with pytest.raises(ConfigError, match="did you mean `MobileNetV2`"):
        from edgecv.models.check import check_model_config

        check_model_config(load_recipe(tiny_recipe_path, ["model.backbone=MobilenetV2x"]))
    with pytest.raises(ConfigError, match="did you mean `classification`"):
        load_recipe(tiny_recipe_path, ["task=clasification"])


def test_format_aliases_users_know(tmp_path):
    t = tmp_path / "t.yaml"
    t.write_text("description: aliases\nartifacts:\n  - {name: sm, format: saved_model}\n"
                 "  - {name: trt, format: engine, precision: fp16}\n")
    target = load_target(str(t))
    assert [a.format for a in target.artifacts] == ["savedmodel", "tensorrt"]


def test_passes_verbose_lists_settings_without_tensorflow():
    code = ("import sys; from typer.testing import CliRunner; from edgecv.cli.main import app; "
            "r = CliRunner().invoke(app, ['passes', '-v'], terminal_width=200); print(r.stdout); "
            "print('TF-IMPORTED' if 'tensorflow' in sys.modules else 'NO-TF')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert "NO-TF" in r.stdout, r.stdout + r.stderr
    assert "PydanticUndefined" not in r.stdout and "sparsity=" in r.stdout
