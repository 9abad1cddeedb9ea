"""The generated reference (docs/commands.md, docs/report-schema.md) says what the code does: it is
rewritten by `python docs/generate.py`, and this test fails when a command, option or report field
changed without it. The README stays short and keeps its two command lines."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_generated_docs_match_the_code():
    r = subprocess.run([sys.executable, str(REPO / "docs" / "generate.py"), "--check"], capture_output=True, text=True,
                       cwd=REPO)
    assert r.returncode == 0, r.stderr + r.stdout


def test_every_command_is_in_the_reference():
    import click
    import typer.main

    from edgecv.cli.main import app

    root = typer.main.get_command(app)
    text = (REPO / "docs" / "commands.md").read_text()
    for name in root.list_commands(click.Context(root)):
        assert f"### `edgecv {name}`" in text


def test_readme_is_short_with_its_two_commands_and_links_that_resolve():
    readme = (REPO / "README.md").read_text()
    assert len(readme.split()) <= 2500
    assert ('pip install -e ".[build,examples]" && python examples/quickstart/make_data.py && '
            "edgecv build --target raspberry-pi-4 --recipe examples/quickstart/edgecv.yaml") in readme
    assert '. .venv/bin/activate && pip install -e ".[build,test,onnx,coreml,report]" && python -m pytest -q' in readme
    for link in re.findall(r"\]\(((?:docs|examples|targets)/[^)#]+)", readme):
        assert (REPO / link).exists(), link
