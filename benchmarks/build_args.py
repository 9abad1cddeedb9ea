"""The arguments and `edgecv build` command the build benchmarks share."""

import argparse
import sys


def parse_build_args(description: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("-r", "--recipe", required=True)
    ap.add_argument("-t", "--target", action="append", required=True)
    ap.add_argument("-o", "--out", default="build")
    ap.add_argument("--repeats", type=int, default=3)
    return ap.parse_args()


def build_command(a: argparse.Namespace, *extra: str) -> list[str]:
    """`edgecv build` in a fresh interpreter (start-up and imports count, as for a user)."""
    cmd = [sys.executable, "-m", "edgecv.cli.main", "build", "-r", a.recipe, "-o", a.out, *extra]
    for t in a.target:
        cmd += ["-t", t]
    return cmd
