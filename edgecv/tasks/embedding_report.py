"""report.html sections of the embedding task: retrieval per artifact with cross-compatibility,
and a panel of validation queries with their five nearest gallery images."""

from __future__ import annotations

from html import escape
from typing import Dict


def _fmt(v, spec: str = ".2f") -> str:
    return "—" if v is None else format(v, spec)


def recall_table(report: dict) -> Dict[str, str]:
    """recall@1/@5, mAP@R per artifact; cross R@1 (artifact queries vs float gallery) and cosine."""
    ref = (report.get("reference") or {}).get("metrics") or {}
    rows = [("float (keras)", ref, {})]
    rows += [(a["name"], a.get("metrics") or {}, a.get("agreement") or {}) for a in report["artifacts"]
             if a.get("metrics")]
    if not ref and len(rows) == 1:
        return {}
    head = "".join(f"<th>{h}</th>" for h in ("model", "R@1 %", "R@5 %", "mAP@R %", "cross R@1 % (vs float gallery)",
                                               "mean cosine vs float"))
    body = "".join(
        f"<tr><td>{escape(name)}</td><td>{_fmt(m.get('recall_at_1'))}</td><td>{_fmt(m.get('recall_at_5'))}</td>"
        f"<td>{_fmt(m.get('map_at_r'))}</td><td>{_fmt(ag.get('cross_recall_at_1'))}</td>"
        f"<td>{_fmt(ag.get('mean_cosine'), '.4f')}</td></tr>" for name, m, ag in rows)
    return {"retrieval": f"<h3>retrieval: validation queries, training-split gallery</h3>"
                         f"<table><tr>{head}</tr>{body}</table>"}


def _thumbnail(path: str, size: int = 72) -> str:
    """An inline JPEG <img> of the image (empty when it cannot be read here)."""
    import base64
    import io

    from PIL import Image, ImageOps

    try:
        with Image.open(path) as img:
            thumb = ImageOps.fit(img.convert("RGB"), (size, size))
    except OSError:
        return ""
    buf = io.BytesIO()
    thumb.save(buf, "JPEG", quality=70)
    return f"<img src='data:image/jpeg;base64,{base64.b64encode(buf.getvalue()).decode()}' width={size}><br>"


def neighbours_panel(report: dict) -> Dict[str, str]:
    """Each panel query and its top-5 neighbours (thumbnails where the images are readable here,
    class, cosine; wrong classes marked), for the float model and each artifact."""
    classes = (report.get("task_info") or {}).get("class_names") or []
    images = (report.get("data") or {}).get("eval_images") or []
    thumb = (lambda i: _thumbnail(images[i]) if 0 <= i < len(images) else "")
    name_of = (lambda i: classes[i] if 0 <= i < len(classes) else str(i))
    models = [("float", ((report.get("reference") or {}).get("metrics") or {}).get("examples") or [])]
    models += [(a["name"], (a.get("metrics") or {}).get("examples") or []) for a in report["artifacts"]]
    models = [(n, ex) for n, ex in models if ex]
    if not models:
        return {}
    parts = ["<h3>queries and their 5 nearest training images (✗: another class)</h3>"]
    for n, (name, examples) in enumerate(models):
        pic = thumb if n == 0 else (lambda i: "")  # pictures once (the first model); the others as text
        rows = []
        for ex in examples:
            cells = "".join(
                f"<td>{pic(j)}{'' if lab == ex['label'] else '✗ '}{escape(name_of(lab))} {cos:.3f}</td>"
                for j, lab, cos in zip(ex["neighbours"], ex["neighbour_labels"], ex["cosines"]))
            rows.append(f"<tr><td>{pic(ex['query'])}<b>{escape(name_of(ex['label']))}</b> (query {ex['query']})"
                        f"</td>{cells}</tr>")
        parts.append(f"<h4>{escape(name)}</h4><table><tr><th>query</th>"
                     + "".join(f"<th>#{i + 1}</th>" for i in range(5)) + "</tr>" + "".join(rows) + "</table>")
    return {"neighbours": "".join(parts)}
