"""report.html in a real browser: readable at a phone's width (nothing wider than the screen), and
the README's screenshots made by docs/screenshots/make.py from a real build."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FLOWERS_REPORT = Path(__file__).parent / "data" / "report_v2_flowers_raspberry-pi-4.json"
PHONE = 390  # CSS pixels: an iPhone 15's width


def chromium() -> str:
    found = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if found is None:
        pytest.skip("no headless Chromium installed (apt-get install chromium; .ci/run installs it)")
    return found


def page_width(html: Path, width: int, profile: Path) -> tuple[int, int]:
    """(how wide the rendered page is, how wide the window is), in CSS pixels, in a window `width` wide."""
    probe = html.with_name("probe.html")
    probe.write_text(html.read_text().replace("</body>", "<script>document.body.setAttribute('data-scroll-width', "
                                              "document.documentElement.scrollWidth + ' ' + "
                                              "document.documentElement.clientWidth)</script></body>"))
    dom = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                          f"--user-data-dir={profile}", f"--window-size={width},900", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=180).stdout
    found = re.search(r'data-scroll-width="(\d+) (\d+)"', dom)
    assert found, dom[:2000]
    return int(found.group(1)), int(found.group(2))


def test_report_html_fits_a_phone(tmp_path):
    from edgecv.report.html import html_report
    from edgecv.results import load_report

    page = tmp_path / "report.html"
    page.write_text(html_report(load_report(json.loads(FLOWERS_REPORT.read_text()))))
    scroll, window = page_width(page, PHONE, tmp_path / "profile")
    assert window <= 520 and scroll <= window  # headless Chromium's narrowest window is about 500 px


def test_screenshots_come_from_a_real_build(tmp_path, tiny_recipe_path):
    from edgecv.orchestrator.runner import run_build
    from rich.console import Console

    chromium()
    target = tmp_path / "pi.yaml"
    target.write_text("description: int8 TFLite\nruntime: {threads: 1}\nartifacts:\n"
                      "  - {name: int8, format: tflite, precision: int8}\n")
    result = run_build(tiny_recipe_path, [str(target)], tmp_path / "build", console=Console(quiet=True))
    assert result.exit_code == 0
    shots = tmp_path / "shots"
    r = subprocess.run([sys.executable, str(REPO / "docs" / "screenshots" / "make.py"), tmp_path / "build" / "pi",
                        "--name", "tiny", "--out", shots, "--runs", "5"], capture_output=True, text=True, timeout=600,
                       env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    for name in ("tiny-before-merge.png", "tiny-after-merge.png", "tiny-phone.png"):
        png = shots / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    # the build folder itself is untouched: the merge happened on a copy
    assert not json.loads((tmp_path / "build" / "pi" / "report.json").read_text())["artifacts"][0]["device_results"]
