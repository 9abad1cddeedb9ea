"""The passes stage: the model an artifact is exported from, when its spec lists passes (one step
per distinct passes key: artifacts with the same passes share it)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

from edgecv.passes.base import make_context, parse_pass_config, run_pass


def run(ctx, step, inputs):
    from edgecv.models.build import TaskModel

    key, spec = step.key, step.spec
    t0 = time.perf_counter()
    hit = ctx.hit("passes", key)
    if hit is not None:
        model = TaskModel.load(hit / "model")
    else:
        base = inputs["model"]
        reports, model = [], base
        for raw in spec.passes:
            cls, cfg = parse_pass_config(raw)
            pass_ctx = make_context(ctx.recipe, inputs["index"], calibration=ctx.calibration_batches(inputs["calibration"]),
                                    teacher=base, console=ctx.console)
            with ctx.steps.step(f"{spec.name}: pass {cls.name}", indeterminate=True):
                model = run_pass(cls, model, cfg, pass_ctx)
            reports.append({"pass": cls.name, "config": cfg.model_dump(mode="json"), **pass_ctx.report})
        with ctx.cache.put("passes", key) as tmp:
            model.save(tmp / "model")
            (tmp / "passes.json").write_text(json.dumps(reports, indent=2, default=float))
    ctx.record("passes", key, hit is not None, t0, artifact=spec.name)
    return model


def reports(entry: Optional[Path]) -> list:
    """What each pass did, kept in the passes entry."""
    return json.loads((entry / "passes.json").read_text()) if entry else []
