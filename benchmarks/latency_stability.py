"""Is latency measurement stable on this machine? Re-validate a build N times (`--force validate`,
which reruns only the runtime measurements) and report each artifact's p50/p90/p99 per run, their
spread ((max - min) / median), and the seconds validation adds to a build.
"""

import json
import statistics
import subprocess
import sys
from pathlib import Path

from build_args import build_command, parse_build_args


def main() -> None:
    a = parse_build_args(__doc__)
    cmd = build_command(a, "--force", "validate")
    runs: dict[tuple[str, str], list[dict]] = {}
    validate_seconds: list[float] = []
    for i in range(a.repeats):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode not in (0, 1):
            sys.exit(f"build failed ({proc.returncode}): {proc.stderr[-2000:]}")
        total = 0.0
        for t in a.target:
            report = json.loads((Path(a.out) / Path(t).stem / "report.json").read_text())
            total += sum(s["seconds"] for s in report["stages"] if s["stage"] == "validate")
            for art in report["artifacts"]:
                if art.get("latency"):
                    runs.setdefault((Path(t).stem, art["name"]), []).append(art["latency"] | {"threads": art["runtime"]["threads"]})
        validate_seconds.append(total)
        print(f"repeat {i + 1}: validation stages took {total:.1f} s")
    print(f"\nlatency over {a.repeats} forced re-validations (ms, batch 1; spread = (max-min)/median):")
    print(f"{'target/artifact':34} {'threads':>7} " + " ".join(f"{s:>24}" for s in ("p50", "p90", "p99")))
    for (target, name), lats in runs.items():
        cells = []
        for stat in ("p50_ms", "p90_ms", "p99_ms"):
            vals = [l[stat] for l in lats]
            med = statistics.median(vals)
            cells.append(f"{'/'.join(f'{v:.2f}' for v in vals)} ±{(max(vals) - min(vals)) / med * 100:.0f}%".rjust(24))
        print(f"{target + '/' + name:34} {str(lats[0]['threads']):>7} " + " ".join(cells))
    print(f"\nvalidation time per build (all targets): median {statistics.median(validate_seconds):.1f} s")


if __name__ == "__main__":
    main()
