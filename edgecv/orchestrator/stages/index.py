"""The index stage: the task reads the recipe's data section into samples per split."""

from __future__ import annotations

import json
import time

from edgecv.data.index import DataIndex


def run(ctx, step, inputs) -> DataIndex:
    t0 = time.perf_counter()
    key = step.key
    hit = ctx.hit("index", key)
    if hit is not None:
        index = DataIndex.from_json(json.loads((hit / "index.json").read_text()))
    else:
        d = ctx.recipe.data
        ctx.console.print(f"[bold]data[/]: indexing {d.root or d.train}" + (f" with {d.annotations}" if d.annotations else ""))
        index = ctx.task.read_data(ctx.recipe)
        with ctx.cache.put("index", key) as tmp:
            (tmp / "index.json").write_text(json.dumps(index.to_json()))
    ctx.record("index", key, hit is not None, t0)
    what = f"{len(index.classes)} classes, " if index.classes else ""
    ctx.console.print(f"[bold]data[/]: {what}{len(index.train)} train / {len(index.val)} val"
                      + (f", [yellow]{len(index.skipped)} unreadable skipped[/]" if index.skipped else "")
                      + (" (unlabelled: judged by agreement with the float model)"
                         if index.info.get("labelled") is False else "")
                      + (" (cached)" if hit is not None else ""))
    return index
