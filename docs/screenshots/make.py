"""Regenerate the README's report screenshots from a real build, so the pictures show what edgecv
prints today:

    edgecv build -t raspberry-pi-4 -r examples/flowers/edgecv.yaml -o build
    python docs/screenshots/make.py build/raspberry-pi-4 --name flowers-raspberry-pi-4

writes NAME-before-merge.png (report.html as built), NAME-after-merge.png (after `edgecv bench` of the
int8 TFLite artifact on this machine is folded in with `edgecv report --merge`: this host stands in
for the device, and the page says which machine measured what) and NAME-phone.png (the page at
390 px, a phone's width). The build folder itself is not changed: the merge happens on a copy.
Needs a headless Chromium (apt-get install chromium).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def browser() -> str:
    found = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if found is None:
        sys.exit("no headless Chromium found: apt-get install chromium")
    return found


def screenshot(page: Path, png: Path, width: int, height: int, profile: Path) -> None:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}"]
    subprocess.run([browser(), *flags, f"--screenshot={png}", f"--window-size={width},{height}", page.as_uri()],
                   capture_output=True, timeout=180, check=True)
    if not png.is_file() or png.stat().st_size < 10_000:
        sys.exit(f"{png}: the browser wrote no picture of {page}")


def edgecv(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgecv.cli.main", *map(str, args)], capture_output=True, text=True)


def make(target_folder: Path, name: str, out: Path, runs: int = 50) -> list[Path]:
    report = json.loads((target_folder / "report.json").read_text())
    int8 = next((a for a in report["artifacts"] if a["format"] == "tflite" and a["precision"] == "int8"
                 and a["status"] == "ok"), None)
    if int8 is None:
        sys.exit(f"{target_folder}: no int8 TFLite artifact to benchmark for the after-merge picture")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / target_folder.name
        shutil.copytree(target_folder, work)
        profile = Path(tmp) / "profile"
        written = [out / f"{name}-before-merge.png"]
        screenshot(work / "report.html", written[-1], 1400, 1800, profile)
        bench = edgecv("bench", work / int8["path"], "--random", "--runs", runs, "--json", Path(tmp) / "device.json")
        if bench.returncode != 0:
            sys.exit(f"edgecv bench failed:\n{bench.stderr}")
        merge = edgecv("report", work / "report.json", "--merge", Path(tmp) / "device.json")
        if merge.returncode not in (0, 1):  # 1: a gate failed with the device's numbers, still a picture
            sys.exit(f"edgecv report --merge failed:\n{merge.stderr}")
        written.append(out / f"{name}-after-merge.png")
        screenshot(work / "report.html", written[-1], 1400, 1800, profile)
        written.append(out / f"{name}-phone.png")
        screenshot(work / "report.html", written[-1], 390, 1600, profile)
    return written


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("target_folder", type=Path, help="a built target folder (with report.json and report.html)")
    p.add_argument("--name", help="file name prefix (default: the folder's name)")
    p.add_argument("--out", type=Path, default=HERE, help="where the pictures go (default: docs/screenshots)")
    p.add_argument("--runs", type=int, default=50, help="timed runs of the device benchmark")
    a = p.parse_args()
    for png in make(a.target_folder, a.name or a.target_folder.name, a.out, a.runs):
        print(f"wrote {png}")


if __name__ == "__main__":
    main()
