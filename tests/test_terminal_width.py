"""At 80 columns (a real terminal in tmux) and piped, no table cuts what a user types or reads:
target, metric, gate and setting names whole; every number of `build --wide` whole."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WIDTH = 80


def typed_names() -> dict:
    """What each listing must show whole: the words a user copies into a target file or a command."""
    from edgecv.config import list_targets
    from edgecv.passes.base import PASS_MODULES, get_pass
    from edgecv.tasks import task_class
    from edgecv.tasks.base import TASK_MODULES
    from edgecv.tasks.gates import GENERIC_GATES, task_gates

    settings = []
    for name in PASS_MODULES:
        try:
            cls = get_pass(name)
        except ImportError:
            continue
        settings += [f"{k}={'required' if f.is_required() else repr(f.get_default(call_default_factory=True))}"
                     for k, f in cls.config.model_fields.items() if k != "name"]
    # the built-in tasks: the `edgecv tasks` subprocess does not see a task another test registered
    # in this process (tests/seam_task.py)
    builtin = [task_class(name) for name in TASK_MODULES]
    metrics = [m.name for cls in builtin for m in cls.metrics + cls.agreement_metrics]
    gates = {g.name for g in GENERIC_GATES} | {g.name for cls in builtin for g in task_gates(cls)}
    return {"targets": [n for n, _ in list_targets()], "tasks": metrics + sorted(gates),
            "passes -v": sorted(PASS_MODULES) + settings}


def whole(word: str, text: str) -> bool:
    return re.search(rf"(?<![\w.=-]){re.escape(word)}(?![\w.=-])", text) is not None


def assert_nothing_cut(text: str, words) -> None:
    assert "…" not in text, text
    missing = [w for w in words if not whole(w, text)]
    assert not missing, f"cut or missing: {missing}\n{text}"


# ---- piped: no terminal, no $COLUMNS ------------------------------------------------------------
@pytest.mark.parametrize("command", ["targets", "tasks", "passes -v"])
def test_piped_listings_fit_80_columns_and_keep_names_whole(command):
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["PYTHONPATH"] = str(REPO)
    r = subprocess.run([sys.executable, "-m", "edgecv.cli.main", *command.split()], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert max(len(line) for line in r.stdout.splitlines()) <= WIDTH, r.stdout
    assert_nothing_cut(r.stdout, typed_names()[command])


# ---- a real 80-column terminal -----------------------------------------------------------------
@pytest.fixture(scope="module")
def tmux():
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (apt-get install tmux; .ci/run installs it)")
    session = f"edgecv-test-{os.getpid()}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", str(WIDTH), "-y", "50"], check=True,
                   env={**os.environ, "TMUX": ""})
    subprocess.run(["tmux", "set-option", "-t", session, "history-limit", "50000"], check=True)
    try:
        yield session
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)


def in_terminal(session: str, command: str, folder: Path, timeout: float = 900) -> str:
    """Run `edgecv COMMAND` at the tmux prompt; return what the terminal shows, as a person sees it."""
    done = folder / f"done-{time.monotonic_ns()}"
    subprocess.run(["tmux", "send-keys", "-t", session, "clear; tmux clear-history", "Enter"], check=True)
    line = (f"cd {folder} && env -u COLUMNS -u LINES PYTHONPATH={REPO} {sys.executable} -m edgecv.cli.main "
            f"{command}; echo $? > {done}")
    subprocess.run(["tmux", "send-keys", "-t", session, line, "Enter"], check=True)
    deadline = time.monotonic() + timeout
    while not done.exists():
        assert time.monotonic() < deadline, f"`edgecv {command}` did not finish in {timeout} s"
        time.sleep(0.5)
    time.sleep(0.3)
    shown = subprocess.run(["tmux", "capture-pane", "-p", "-t", session, "-S", "-", "-E", "-"], capture_output=True,
                           text=True, check=True).stdout
    assert done.read_text().strip() in ("0", "1"), shown
    return shown


@pytest.mark.parametrize("command", ["targets", "tasks", "passes -v"])
def test_listings_at_80_columns_keep_names_whole(tmux, tmp_path, command):
    shown = in_terminal(tmux, command, tmp_path)
    assert_nothing_cut(shown, typed_names()[command])


def test_build_wide_at_80_columns_keeps_every_number_whole(tmux, tmp_path, tiny_recipe_path):
    target = tmp_path / "two-floats.yaml"
    target.write_text("description: two float TFLite files\nartifacts:\n  - {name: fp32_artifact, format: tflite}\n"
                      "  - {name: fp16_artifact, format: tflite, precision: fp16}\n")
    shown = in_terminal(tmux, f"build -t {target} -r {tiny_recipe_path} -o {tmp_path / 'build'} --wide", tmp_path)
    report = json.loads((tmp_path / "build" / "two-floats" / "report.json").read_text())
    numbers = []
    for a in report["artifacts"]:
        lat = a["latency"]
        numbers += [a["name"], f"{a['metrics']['accuracy']:.2f}%", f"{lat['p50_ms']:.2f}", f"{lat['p90_ms']:.2f}",
                    f"{lat['p99_ms']:.2f}", f"{1000 * lat['batch'] / lat['p50_ms']:.0f}",
                    f"{a['size_bytes'] / 1e6:.2f}", f"{a['gzip_bytes'] / 1e6:.2f}"]
    table = shown[:shown.index("passed their gates")] if "passed their gates" in shown else shown
    assert_nothing_cut(table, numbers)
    for header in ("artifact", "format", "precision", "p99 ms", "gzip MB", "gates"):
        assert header in table, table
    assert "val_accuracy" not in shown or re.search(r"val_accuracy \d+\.\d\d%", shown), shown  # % as in the table
    from test_terminal import NATIVE_LINE

    assert not [line for line in shown.splitlines() if NATIVE_LINE.match(line)], shown
