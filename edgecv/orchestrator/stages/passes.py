"""The passes stage: the model an artifact is exported from, when its spec lists passes."""

from __future__ import annotations

import json
import time
from edgecv.passes.base import make_context, parse_pass_config


def run(b, spec, akeys: dict, index, calib):
    base = b.model(index)
    if not spec.passes:
        return base
    from edgecv.models.build import TaskModel

    key = akeys["passes"]
    if key in b.pass_models:
        return b.pass_models[key]
    t0 = time.perf_counter()
    hit = b.hit("passes", key)
    if hit is not None:
        model = TaskModel.load(hit / "model")
    else:
        reports, model = [], base
        for raw in spec.passes:
            cls, cfg = parse_pass_config(raw)
            ctx = make_context(b.recipe, index, calibration=b.calibration_batches(calib), teacher=base,
                               console=b.console)
            with b.steps.step(f"{spec.name}: pass {cls.name}", indeterminate=True):
                model = cls().run(model, cfg, ctx)
            reports.append({"pass": cls.name, "config": cfg.model_dump(mode="json"), **ctx.report})
        with b.cache.put("passes", key) as tmp:
            model.save(tmp / "model")
            (tmp / "passes.json").write_text(json.dumps(reports, indent=2, default=float))
    b.record("passes", key, hit is not None, t0, artifact=spec.name)
    b.pass_models[key] = model
    return model


def reports(b, akeys: dict) -> list:
    hit = b.cache.get("passes", akeys["passes"]) if "passes" in akeys else None
    return json.loads((hit / "passes.json").read_text()) if hit else []
