"""What a person sees: an 80-column table, a quiet stderr with converters' output in build logs,
progress lines, CI reports that open with the verdict, device numbers in every report, and
report.html checked in a headless browser before and after a device merge."""

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from rich.console import Console

from edgecv.report.table import print_summary, summary_table
from edgecv.results import load_report

REPO = Path(__file__).resolve().parents[1]
V1_REPORT = Path(__file__).parent / "data" / "report_v1_raspberry-pi-4.json"
# What TensorFlow, abseil and the converters print on their own: none of it may reach the terminal
NATIVE_LINE = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages|INFO: Created TensorFlow|fully_quantize:|"
                         r".*(tensorflow|cuda|absl|node_def_util|XNNPACK|oneDNN))")


def cli(*args, cwd=None, timeout=900):
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "80"}
    return subprocess.run([sys.executable, "-m", "edgecv.cli.main", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=timeout)


def render(renderable, width: int) -> str:
    console = Console(file=io.StringIO(), width=width, force_terminal=False, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


@pytest.fixture
def long_report():
    report = load_report(json.loads(V1_REPORT.read_text()))
    report.artifacts[0].name = "int8_accuracy_aware_student"  # a long name must wrap, not be cut
    return report


def test_table_fits_80_columns_without_cut_cells(long_report):
    text = render(summary_table(long_report), 80)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80, text
    assert "…" not in text, text
    header = next(line for line in lines if "p50 ms" in line)
    for h in ("artifact", "accuracy", "Δ", "top-1 agree", "p50 ms", "FPS", "MB"):
        assert h in header
    for a in long_report.artifacts:  # every number whole
        acc = f"{a.metrics['accuracy']:.2f}%"
        assert acc in text and f"{a.latency['p50_ms']:.2f}" in text
    # a long name folds onto a second line of its cell instead of losing its end
    cell = "".join(re.match(r"^ ?(\S*)", line).group(1) for line in lines if "int8_acc" in line or "_student" in line)
    assert cell == "int8_accuracy_aware_student", text
    assert "gzip" not in text and "p99" not in text  # the rest is for --wide and the reports


def test_wide_table_has_every_report_column(long_report):
    text = render(summary_table(long_report, wide=True), 200)
    for h in ("format", "precision", "p90 ms", "p99 ms", "gzip MB", "gates"):
        assert h in text


def test_table_goes_to_stdout_and_notes_to_stderr(long_report):
    table, notes = io.StringIO(), io.StringIO()
    long_report.artifacts[0].notes.append("a note for stderr")
    print_summary(long_report, Console(file=table, width=80), notes=Console(file=notes, width=200))
    assert "p50 ms" in table.getvalue() and "artifacts" in table.getvalue()  # table and verdict
    assert "a note for stderr" in notes.getvalue() and "a note" not in table.getvalue()
    assert "not on the target device" in notes.getvalue()


def test_native_output_is_captured_at_the_descriptor_level(tmp_path):
    """C code writing to fds 1 and 2 lands in the log; edgecv's own console still reaches the terminal."""
    script = f"""
import ctypes, os, sys
sys.path.insert(0, {str(REPO)!r})
from rich.console import Console
from edgecv.terminal import NativeOutput
native = NativeOutput().start(__import__("pathlib").Path({str(tmp_path / "build.log")!r}))
os.write(2, b"E0000 noise from C++ on fd 2\\n")
ctypes.CDLL(None).printf(b"fully_quantize: 0 from C stdio\\n")
with native.scope(__import__("pathlib").Path({str(tmp_path / "t" / "build.log")!r})):
    os.write(2, b"target noise\\n")
Console(file=native.terminal_err).print("edgecv's own line")
native.stop()
print("after stop")
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "edgecv's own line" and r.stdout.strip() == "after stop"
    log = (tmp_path / "build.log").read_text()
    assert "E0000 noise" in log and "fully_quantize" in log and "target noise" not in log
    assert (tmp_path / "t" / "build.log").read_text() == "target noise\n"


@pytest.fixture(scope="module")
def cli_build(tmp_path_factory, tiny_recipe_path):
    """A build through the real command line, as a user runs it (stderr not a terminal)."""
    out = tmp_path_factory.mktemp("cli_build")
    r = cli("build", "-t", "raspberry-pi-4", "-r", tiny_recipe_path, "-o", out, "--no-gates")
    assert r.returncode == 0, r.stderr
    return out, r


def test_build_prints_no_tensorflow_absl_or_converter_line(cli_build):
    out, r = cli_build
    noise = [line for line in r.stderr.splitlines() if NATIVE_LINE.match(line)]
    assert noise == [], "\n".join(noise)
    logs = (out / "build.log").read_text() + (out / "raspberry-pi-4" / "build.log").read_text()
    assert "fully_quantize" in logs or "XNNPACK" in logs  # captured, not lost
    # progress: one closing line per long step, no blank lines without a terminal
    for step in ("fine-tune", "reference outputs", "int8: exporting", "int8: validating", "fp32: validating"):
        assert any(line.startswith("✓ ") and step in line for line in r.stderr.splitlines()), step
    assert "" not in r.stderr.splitlines()
    assert "p50 ms" in r.stdout and "raspberry-pi-4:" in r.stdout and "artifacts" in r.stdout
    assert max(len(line) for line in r.stdout.splitlines()) <= 80 and "…" not in r.stdout  # COLUMNS=80


def test_summary_md_opens_with_the_verdict_and_names_files_relative(cli_build):
    out, _ = cli_build
    md = (out / "raspberry-pi-4" / "summary.md").read_text()
    first = md.splitlines()[0]
    assert first.startswith("## ") and ("✅" in first or "❌" in first) and "artifacts" in first
    assert str(out) not in md
    assert "Build-host latency: measured on" in md


def test_junit_has_testsuites_root_times_values_and_failure_bodies(cli_build):
    from edgecv.report.ci import junit_xml

    out, _ = cli_build
    root = ET.parse(out / "raspberry-pi-4" / "junit.xml").getroot()
    assert root.tag == "testsuites" and float(root.get("time")) > 0
    cases = root.findall("testsuite/testcase")
    assert cases and all(c.get("time") is not None for c in cases)
    passing_gates = [c for c in cases if c.get("name") != "build" and c.find("failure") is None]
    for c in passing_gates:
        assert c.find("properties/property[@name='value']") is not None and "measured" in c.find("system-out").text
    report = load_report(json.loads((out / "raspberry-pi-4" / "report.json").read_text()))
    report.artifacts[1].gates[0].passed = False  # as if fp32 missed its first gate
    failed = ET.fromstring(junit_xml(report).split("\n", 1)[1]).find(".//failure")
    assert failed.text and "measured on" in failed.text


def test_tensorrt_skip_carries_the_engine_build_command():
    from edgecv.report.ci import junit_xml, markdown_summary

    report = load_report(json.loads(V1_REPORT.read_text()))
    a = report.artifacts[0]
    a.status, a.reason, a.prepared = "not_built", "no TensorRT here", "device-bundle-int8"
    a.how_to_finish = "edgecv engine build /home/ci/build/jetson/device-bundle-int8"
    skipped = ET.fromstring(junit_xml(report).split("\n", 1)[1]).find(".//skipped")
    assert "edgecv engine build device-bundle-int8" in skipped.get("message")
    md = markdown_summary(report)
    assert "`edgecv engine build device-bundle-int8`" in md and "/home/ci" not in md


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _browse(page: Path, shot: Path, profile: Path) -> str:
    browser = _chromium()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1400,2400", page.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 20_000  # a page with plots, not a blank one
    return dom


def test_report_html_before_and_after_a_device_merge(cli_build, tmp_path):
    """report.html in headless Chromium: plots as SVG text with unique ids, gates with limits,
    then device numbers beside the build host's after `edgecv report --merge`."""
    out, _ = cli_build
    target = tmp_path / "raspberry-pi-4"
    shutil.copytree(out / "raspberry-pi-4", target)
    page = target / "report.html"
    html = page.read_text()
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "duplicate element ids"
    assert "<text" in html and "accuracy vs latency" in html  # SVG text, searchable
    assert html.count("<svg") >= 3 and "device p50" not in html
    if _chromium() is None:
        pytest.skip("no headless Chromium installed (apt-get install chromium); the HTML checks above still ran")
    before = _browse(page, tmp_path / "before.png", tmp_path / "profile")
    assert "Gates: limits beside measured values" in before and "not on the target device" in before

    bench = cli("bench", target / "tiny_int8.tflite", "--random", "--runs", "5", "--seconds", "0",
                "--json", tmp_path / "pi4.json")
    assert bench.returncode == 0, bench.stderr
    dev = json.loads((tmp_path / "pi4.json").read_text())
    dev["device"]["board"] = "Raspberry Pi 4 Model B Rev 1.4"  # as the Pi names itself
    (tmp_path / "pi4.json").write_text(json.dumps(dev))
    merge = cli("report", target / "report.json", "--merge", tmp_path / "pi4.json")
    assert merge.returncode in (0, 1), merge.stderr
    after = _browse(page, tmp_path / "after.png", tmp_path / "profile")
    assert "Device results" in after and "Raspberry Pi 4 Model B" in after and "device p50 ms" in after
    assert "host p50 ms" in after
    md = (target / "summary.md").read_text()
    assert "device p50 ms" in md and "Device latency: measured on Raspberry Pi 4 Model B" in md
    junit = (target / "junit.xml").read_text()
    assert "dev p50" in junit or "device p50" in junit
    for name in ("before.png", "after.png"):  # kept for people to look at when SCREENSHOTS is set
        if os.environ.get("EDGECV_SCREENSHOTS"):
            shutil.copyfile(tmp_path / name, Path(os.environ["EDGECV_SCREENSHOTS"]) / f"tiny-{name}")


def test_verbose_echoes_the_captured_output(tmp_path):
    """`-v`: the log still gets everything, and the terminal sees it too."""
    script = f"""
import os, sys, pathlib
sys.path.insert(0, {str(REPO)!r})
from edgecv.terminal import NativeOutput
native = NativeOutput(verbose=True).start(pathlib.Path({str(tmp_path / "build.log")!r}))
os.write(2, b"E0000 converter line\\n")
native.stop()
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "E0000 converter line" in r.stderr and "E0000 converter line" in (tmp_path / "build.log").read_text()
