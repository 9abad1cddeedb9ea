"""`edgecv validate ARTIFACT --data DIR --annotations FILE`: a keypoint artifact's NME on any machine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from rich.table import Table

from edgecv.errors import EdgecvError


def validate_keypoints(artifact: Path, data: Path, annotations: Path, resize: Optional[str], threads: Optional[int],
                       json_out: Optional[Path], out, fail) -> None:
    from edgecv.runtimes import RuntimeUnavailable, load_runtime
    from edgecv.validate.keypoint_folder import evaluate_keypoints, keypoint_sidecar

    try:
        if not artifact.exists():
            raise EdgecvError(f"{artifact}: no such file or folder")
        with load_runtime(artifact, threads=threads) as rt:
            res = evaluate_keypoints(rt, data, annotations, keypoint_sidecar(artifact), resize)
    except (EdgecvError, ValueError, RuntimeUnavailable) as e:
        fail(e if isinstance(e, EdgecvError) else EdgecvError(str(e)))
    m = res.metrics
    t = Table(title=f"{artifact.name} on {data} ({m['count']} images, NME normalized by {res.normalized_by})")
    for col in ("NME", "failure rate", "mean error px", "worst keypoint"):
        t.add_column(col)
    per_kp = [(e, i) for i, e in enumerate(m["per_keypoint_nme"]) if e is not None]
    worst = max(per_kp) if per_kp else None
    t.add_row(f"{m['nme']:.4f}", f"{m['failure_rate']:.3f}", f"{m['mean_error_px']:.2f}",
              f"#{worst[1]} NME {worst[0]:.4f}" if worst else "-")
    out.print(t)
    if res.skipped:
        out.print(f"skipped {len(res.skipped)} row(s); first: {res.skipped[0][0]}: {res.skipped[0][1]}")
    if json_out:
        json_out.write_text(json.dumps(res.__dict__, indent=2, default=str))
