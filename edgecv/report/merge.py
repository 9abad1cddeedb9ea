"""Fold on-device benchmark results into a build's report, and re-check the gates with them.

An artifact is matched by its sha256 (so a result from a different file is never merged into the
wrong row). Latency gates are then checked against the device's numbers, and accuracy gates against
the device's accuracy where it measured one: the device is where the numbers matter.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgecv.errors import EdgecvError
from edgecv.validate.gates import check_gates


def merge_device_results(report: dict, results: list[dict]) -> list[str]:
    """Mutates `report`; returns gate failure messages after the merge."""
    by_sha = {a.get("sha256"): a for a in report["artifacts"] if a.get("sha256")}
    for res in results:
        if res.get("schema") != "edgecv.bench/1":
            raise EdgecvError(f"not an `edgecv bench --json` result (schema {res.get('schema')!r})")
        entry = by_sha.get(res["artifact"]["sha256"])
        if entry is None:
            names = ", ".join(a["name"] for a in report["artifacts"])
            raise EdgecvError(f"{res['artifact']['name']} (sha256 {res['artifact']['sha256'][:12]}) is not an artifact "
                              f"of this build ({names}): benchmark the files of this build")
        entry.setdefault("device_results", []).append(
            {k: res[k] for k in ("created", "device", "threads", "runtime", "load_seconds", "memory", "latency",
                                 "latency_by_batch", "accuracy")})
    failures = []
    gates = report["target"].get("gates") or {}
    overrides = {a["name"]: a.get("gates") or {} for a in report["target"]["artifacts"]}
    for entry in report["artifacts"]:
        if not entry.get("device_results"):
            continue
        dev = entry["device_results"][-1]
        view = dict(entry)
        view["latency"] = dev["latency"]
        if dev.get("accuracy"):
            view["metrics"] = dict(entry.get("metrics") or {}, accuracy=dev["accuracy"]["top1"])
            ref = report.get("reference", {}).get("accuracy")
            if ref is not None:
                view["accuracy_delta"] = dev["accuracy"]["top1"] - ref
        limits = dict(gates) | {k: v for k, v in overrides.get(entry["name"], {}).items() if v is not None}
        entry["gates"] = [g.to_json() | {"source": "device"} for g in check_gates(entry["name"], view, limits)]
        failures += [g["message"] for g in entry["gates"] if g["passed"] is False]
    return failures


def merge_files(report_path: Path, result_paths: list[Path]) -> list[str]:
    from edgecv.report.outputs import write_reports

    report = json.loads(Path(report_path).read_text())
    results = [json.loads(Path(p).read_text()) for p in result_paths]
    failures = merge_device_results(report, results)
    write_reports(Path(report_path).parent, report)
    return failures
