"""Bad input gets a message that names the fix: close matches for misspelt keys and gates in target
files, a folder given where a file is expected."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from edgecv.cli.main import app

RECIPE = Path(__file__).resolve().parents[1] / "examples" / "quickstart" / "edgecv.yaml"


def dry_run(*args) -> tuple[int, str]:
    r = CliRunner().invoke(app, ["build", "--dry-run", *map(str, args)])
    return r.exit_code, " ".join(r.output.split())


def test_misspelt_artifact_key_and_gates_get_a_close_match(tmp_path):
    t = tmp_path / "typo.yaml"
    t.write_text("description: x\nartifacts:\n  - {name: a, format: tflite, precison: int8,"
                 " gates: {top1_agrement_min: 0.9}}\ngates: {acuracy_drop_max: 1}\n")
    code, text = dry_run("-t", t, "-r", RECIPE, "-o", tmp_path / "b")
    assert code == 2
    assert "unknown key `precison` — did you mean `precision`?" in text
    assert "unknown gate `top1_agrement_min` — did you mean `top1_agreement_min`" in text  # closest first
    assert "unknown gate `acuracy_drop_max` — did you mean `accuracy_drop_max`" in text
    assert "Value error" not in text and "known gates: accuracy_drop_max, accuracy_drop_max_confident" not in text


def test_a_folder_given_as_recipe_names_the_file_inside(tmp_path):
    code, text = dry_run("-t", "raspberry-pi-4", "-r", RECIPE.parent, "-o", tmp_path / "b")
    assert code == 2 and "is a folder: give the file inside it, e.g." in text and "edgecv.yaml" in text


def test_help_is_grouped_uncut_and_readable():
    import click
    import typer.main

    root = typer.main.get_command(app)
    r = CliRunner().invoke(app, ["-h"], env={"COLUMNS": "80"})
    assert r.exit_code == 0
    for panel in ("Build", "Check an artifact", "Look up", "Embeddings and search"):
        assert f"─ {panel} ─" in r.output, r.output
    commands = [[n] for n in root.list_commands(click.Context(root))] + [["engine", "build"], ["engine", "validate"]]
    for command in commands:
        r = CliRunner().invoke(app, [*command, "-h"], env={"COLUMNS": "80"})
        assert r.exit_code == 0, (command, r.output)
        assert "…" not in r.output and "<list" not in r.output and "<path>" not in r.output, (command, r.output)
