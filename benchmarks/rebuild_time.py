"""Time `edgecv build` with nothing changed: median wall time over repeats, and the stages that ran.

Each repeat is a fresh process (as a user or CI runs it), so interpreter and import time count.
"""

import json
import statistics
import subprocess
import time
from pathlib import Path

from build_args import build_command, parse_build_args


def main() -> None:
    a = parse_build_args(__doc__)
    cmd = build_command(a)
    times = []
    for i in range(a.repeats):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        ran = [line for line in proc.stderr.splitlines() if line.startswith("stages run:")]
        print(f"run {i + 1}: {times[-1]:.2f} s, exit {proc.returncode}, {ran[0] if ran else 'no stage line'}")
    print(f"median no-change rebuild: {statistics.median(times):.2f} s over {a.repeats} runs "
          f"(min {min(times):.2f}, max {max(times):.2f}); command: {' '.join(cmd[1:])}")
    for t in a.target:
        report = json.loads((Path(a.out) / Path(t).stem / "report.json").read_text())
        stages = [s for s in report["stages"] if not s["hit"]]
        print(f"  {Path(t).stem}: stages not from the cache in the last run: {[s['stage'] for s in stages] or 'none'}")


if __name__ == "__main__":
    main()
