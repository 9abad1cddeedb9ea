"""Build every bundled example from nothing and check every target's own gates.

A clean clone of the repository (a commit, default HEAD) into WORK/edgecv, a fresh virtual
environment installed the README's way (`pip install -e ".[build,examples,onnx,coreml]"`: the
README's install plus the ONNX and Core ML extras its example targets need), then for each example
the build command its recipe header (or, failing that, the README) names, into an empty folder
WORK/out/EXAMPLE. The quickstart first writes its data with `examples/quickstart/make_data.py`, as
the README does. `../shared` beside the clone is a link to --shared.

Every target's report is then read: an artifact that failed, or a gate whose `passed` is false,
fails the target; artifacts only a device can build (TensorRT engines: `not_built`) and gates
only a device can measure (`passed: null`) are counted, not failed. Times, load and a pass/fail
table are printed and written to WORK/summary.json. Exit 0 when every target passed, else 1.

  nice -n 5 python benchmarks/build_examples.py --work /work/exp/examples
  nice -n 5 python benchmarks/build_examples.py --work /tmp/ex --examples face-keypoints --ref r5-fix
  # --venv PATH reuses an environment (then the run is not from a fresh install; the table says so)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXTRAS = "build,examples,onnx,coreml"
COMMAND = re.compile(r"edgecv build\b[^`\n]*?(?:-r|--recipe)\s+(examples/([\w.-]+)/edgecv\.yaml)[^`\n]*")


def sh(cmd: list[str], log: Path, cwd: Path, env=None) -> tuple[int, float]:
    """Run `cmd` with its output appended to `log`; (exit code, seconds)."""
    t0 = time.monotonic()
    with open(log, "a") as f:
        f.write(f"$ {shlex.join(cmd)}\n")
        f.flush()
        rc = subprocess.call(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT)
    return rc, time.monotonic() - t0


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def example_commands(clone: Path) -> dict[str, list[str]]:
    """example name -> the targets of its build command: the recipe header's, else the README's."""
    found: dict[str, list[str]] = {}
    sources = [(p.read_text(), p.parent.name) for p in sorted((clone / "examples").glob("*/edgecv.yaml"))]
    readme = (clone / "README.md").read_text()
    for text, name in sources:
        header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
        for block in (header, readme):
            for m in COMMAND.finditer(block):
                if m.group(2) == name and name not in found:
                    found[name] = re.findall(r"(?:-t|--target)\s+([\w.-]+)", m.group(0))
        if name not in found:
            found[name] = []  # no command anywhere: reported as such
    return found


def check_target(report_path: Path) -> dict:
    """What the target's own report says: failed artifacts, failed gates, what only a device can do."""
    if not report_path.is_file():
        return {"passed": False, "problems": [f"no report at {report_path}"]}
    report = json.loads(report_path.read_text())
    problems, not_built, unmeasured, gates = [], [], 0, 0
    for a in report["artifacts"]:
        if a["status"] == "not_built":
            not_built.append(a["name"])
            continue
        if a["status"] != "ok":
            problems.append(f"{a['name']}: {a['status']}: {(a.get('error') or '')[:200]}")
        for g in a.get("gates", []):
            gates += 1
            if g.get("passed") is False:
                problems.append(g["message"])
            elif g.get("passed") is None:
                unmeasured += 1
    return {"passed": not problems, "problems": problems, "artifacts": len(report["artifacts"]),
            "not_built_here": not_built, "gates": gates, "gates_not_measured_here": unmeasured}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="an empty or new folder for the clone, venv and builds")
    ap.add_argument("--repo", default=str(REPO), help="repository to clone (default: this one)")
    ap.add_argument("--ref", default="HEAD", help="commit or branch to build (default: HEAD of --repo)")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared", help="the shared assets folder")
    ap.add_argument("--examples", nargs="*", help="only these examples (default: every one)")
    ap.add_argument("--venv", type=Path, help="reuse this environment instead of a fresh install")
    a = ap.parse_args()

    work = a.work.resolve()
    if work.exists() and any(work.iterdir()):
        sys.exit(f"--work {work} is not empty: the builds must start from nothing")
    work.mkdir(parents=True, exist_ok=True)
    log, clone, out = work / "run.log", work / "edgecv", work / "out"
    summary = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "load_start": load()}
    print(f"work {work}; load {load()}; log {log}", flush=True)

    rc, _ = sh(["git", "clone", "--quiet", "--no-hardlinks", a.repo, str(clone)], log, work)
    rc = rc or sh(["git", "checkout", "--quiet", a.ref], log, clone)[0]
    if rc:
        sys.exit(f"clone of {a.repo} at {a.ref} failed: see {log}")
    summary["commit"] = subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=clone, text=True).strip()
    (work / "shared").symlink_to(a.shared.resolve())  # ../shared beside the clone, as the recipes expect

    if a.venv:
        venv, summary["fresh_venv"] = a.venv.resolve(), False
    else:
        venv, summary["fresh_venv"] = work / "venv", True
        t0 = time.monotonic()
        rc, _ = sh([sys.executable, "-m", "venv", str(venv)], log, work)
        rc = rc or sh([str(venv / "bin" / "pip"), "install", "--quiet", "-e", f".[{EXTRAS}]"], log, clone)[0]
        summary["install_seconds"] = round(time.monotonic() - t0)
        if rc:
            sys.exit(f"pip install -e '.[{EXTRAS}]' failed: see {log}")
        print(f"fresh venv installed in {summary['install_seconds']} s (load {load()})", flush=True)
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "VIRTUAL_ENV": str(venv)}
    env.pop("PYTHONPATH", None)  # the clone's code, nothing else
    if a.venv:  # its editable install may point at another checkout: the clone's code comes first
        env["PYTHONPATH"] = str(clone)

    commands = example_commands(clone)
    rows = []
    for name, targets in commands.items():
        if a.examples and name not in a.examples:
            continue
        if not targets:
            rows.append({"example": name, "target": "-", "passed": False, "seconds": 0,
                         "problems": ["no `edgecv build` command in its recipe header or the README"]})
            continue
        if name == "quickstart":
            rc, _ = sh([str(venv / "bin" / "python"), "examples/quickstart/make_data.py"], log, clone, env)
            if rc:
                rows.append({"example": name, "target": "-", "passed": False, "seconds": 0,
                             "problems": ["make_data.py failed"]})
                continue
        cmd = [str(venv / "bin" / "edgecv"), "build", *[x for t in targets for x in ("-t", t)],
               "-r", f"examples/{name}/edgecv.yaml", "-o", str(out / name)]
        print(f"{name}: {shlex.join(cmd[1:])} (load {load()})", flush=True)
        rc, secs = sh(cmd, log, clone, env)
        for t in targets:
            row = {"example": name, "target": t, "build_exit": rc, "seconds": round(secs), "load_end": load(),
                   **check_target(out / name / t / "report.json")}
            rows.append(row)
            print(f"  {t}: {'pass' if row['passed'] else 'FAIL'} ({secs:.0f} s for the build, exit {rc})"
                  + "".join(f"\n    - {p}" for p in row["problems"]), flush=True)

    summary.update(rows=rows, load_end=load(), finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    (work / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"\ncommit {summary['commit'][:10]}, {'fresh' if summary['fresh_venv'] else 'reused'} venv, "
          f"load {summary['load_start']} -> {summary['load_end']}")
    print(f"{'example':16} {'target':26} {'result':6} {'build s':>8} {'artifacts':>9} {'gates':>5}  device-only")
    for r in rows:
        device = ", ".join(r.get("not_built_here", [])) or "-"
        print(f"{r['example']:16} {r['target']:26} {'pass' if r['passed'] else 'FAIL':6} {r['seconds']:>8} "
              f"{r.get('artifacts', 0):>9} {r.get('gates', 0):>5}  {device}")
    return 0 if rows and all(r["passed"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
