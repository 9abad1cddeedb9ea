"""The cost of verifying the cache on a no-change rebuild.

1. In process: the time to check every cache entry of a build folder against its recorded sha256
   and every target folder against its manifest (median over repeats).
2. End to end (with --before PATH, a checkout of edgecv without verification, e.g.
   `git worktree add /tmp/before <base commit>`): `edgecv build` with nothing changed, run alternately
   with that checkout and this one (each in a fresh process, each on its own copy of the build
   folder), median wall time of each.

    python benchmarks/cache_verification.py -r RECIPE -t TARGET -o build [--before /tmp/before] [--repeats 7]
"""

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from build_args import build_command, parse_build_args

REPO = Path(__file__).resolve().parents[1]


def in_process(out: Path, repeats: int) -> None:
    from edgecv.build_folder import folder_problems
    from edgecv.orchestrator.cache import entry_problem

    entries = [e for e in (out / ".cache").glob("*/*") if (e / ".complete").is_file()]
    size = sum(f.stat().st_size for e in entries for f in e.rglob("*") if f.is_file())
    targets = [d for d in out.iterdir() if d.is_dir() and not d.name.startswith(".")]
    for what, check in (("cache entries", lambda: [entry_problem(e) for e in entries]),
                        ("target folders", lambda: [folder_problems(d) for d in targets])):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            problems = check()
            times.append(time.perf_counter() - t0)
        assert not any(problems), problems
        print(f"verify {what}: median {statistics.median(times) * 1000:.1f} ms over {repeats} "
              f"(min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f})"
              + (f"; {len(entries)} entries, {size / 1e6:.2f} MB" if what == "cache entries" else f"; {len(targets)}"))


def end_to_end(a, before: Path) -> None:
    runs = {"before": [], "after": []}
    outs = {"before": Path(a.out + "-before"), "after": Path(a.out)}
    if not outs["before"].exists():
        shutil.copytree(a.out, outs["before"], symlinks=True)
    for i in range(a.repeats):
        for label, path in (("before", before), ("after", REPO)):
            a_copy = type(a)(**{**vars(a), "out": str(outs[label])})
            env = {**os.environ, "PYTHONPATH": str(path)}
            t0 = time.perf_counter()
            proc = subprocess.run(build_command(a_copy), capture_output=True, text=True, env=env)
            runs[label].append(time.perf_counter() - t0)
            ran = next((line for line in proc.stderr.splitlines() if line.startswith("stages run:")), "?")
            print(f"run {i + 1} {label}: {runs[label][-1]:.2f} s, exit {proc.returncode}, {ran}")
    for label, times in runs.items():
        print(f"{label}: median no-change rebuild {statistics.median(times):.2f} s over {a.repeats} "
              f"(min {min(times):.2f}, max {max(times):.2f})")
    print(f"difference of medians: {statistics.median(runs['after']) - statistics.median(runs['before']):+.2f} s")


def main() -> None:
    sys.argv, before = list(sys.argv), None
    if "--before" in sys.argv:
        i = sys.argv.index("--before")
        before = Path(sys.argv[i + 1])
        del sys.argv[i:i + 2]
    a = parse_build_args(__doc__)
    subprocess.run(build_command(a), capture_output=True, check=True)  # make sure it is built
    in_process(Path(a.out), max(a.repeats, 5))
    if before is not None:
        end_to_end(a, before)


if __name__ == "__main__":
    main()
