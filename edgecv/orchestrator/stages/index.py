"""The index stage: the task reads the recipe's data section into samples per split."""

from __future__ import annotations

import json
import time

from edgecv.data.index import DataIndex


def run(b) -> DataIndex:
    t0 = time.perf_counter()
    key = b.keys.index
    hit = b.hit("index", key)
    if hit is not None:
        index = DataIndex.from_json(json.loads((hit / "index.json").read_text()))
    else:
        d = b.recipe.data
        b.console.print(f"[bold]data[/]: indexing {d.root or d.train}" + (f" with {d.annotations}" if d.annotations else ""))
        index = b.task.read_data(b.recipe)
        with b.cache.put("index", key) as tmp:
            (tmp / "index.json").write_text(json.dumps(index.to_json()))
    b.record("index", key, hit is not None, t0)
    what = f"{len(index.classes)} classes, " if index.classes else ""
    b.console.print(f"[bold]data[/]: {what}{len(index.train)} train / {len(index.val)} val"
                    + (f", [yellow]{len(index.skipped)} unreadable skipped[/]" if index.skipped else "")
                    + (" (unlabelled: judged by agreement with the float model)"
                       if index.info.get("labelled") is False else "")
                    + (" (cached)" if hit is not None else ""))
    return index
