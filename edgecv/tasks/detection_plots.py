"""report.html panels for detection: validation photos with ground truth, float and artifact boxes
(the images where an artifact agrees best and worst with the float model), and the
precision-recall curve at IoU 0.5 of the float model and every artifact."""

from __future__ import annotations

from typing import Dict

import numpy as np

from edgecv.data.images import ImageDecodeError, load_rgb
from edgecv.figures import pyplot, svg

ARTIFACT_COLOURS = ["tab:red", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive"]
SHOWN = 2  # best and worst images each


def _photo(path: str):
    try:
        return load_rgb(path)
    except (ImageDecodeError, OSError):
        return None


def _draw(ax, rows, colour, threshold, label, dashed=False):
    from matplotlib.patches import Rectangle

    first = True
    for r in rows:
        x1, y1, x2, y2 = r[:4]
        if len(r) > 5 and r[4] < threshold:
            continue
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=colour, lw=1.4,
                               ls="--" if dashed else "-", label=label if first else None))
        if len(r) > 5:
            ax.text(x1, y1, f"{r[4]:.2f}", color=colour, fontsize=6, va="bottom")
        first = False


def _chosen(artifact: dict, count: int) -> list[tuple[int, str]]:
    f1 = (artifact.get("agreement") or {}).get("per_image_box_f1") or []
    if not f1:
        return []
    order = np.argsort(np.asarray(f1, np.float64), kind="stable")
    worst = [(int(i), f"worst agreement (box F1 {f1[i]:.2f})") for i in order[:count]]
    best = [(int(i), f"best agreement (box F1 {f1[i]:.2f})") for i in order[::-1][:count] if int(i) not in
            {w for w, _ in worst}]
    return best + worst


def detection_plots(report: dict) -> Dict[str, str]:
    plt = pyplot()
    info = report.get("task_info") or {}
    ref = (report.get("reference") or {}).get("metrics") or {}
    measured = [a for a in report.get("artifacts", []) if (a.get("metrics") or {}).get("preview_detections")]
    if plt is None or not ref.get("preview_detections"):
        return {}
    out = {}
    threshold = float((info.get("detection") or {}).get("score_threshold", 0.5))
    paths = info.get("preview_images", [])
    shown = next((a for a in measured if (a.get("agreement") or {}).get("per_image_box_f1")), None)
    picks = _chosen(shown, SHOWN) if shown else [(i, "") for i in range(min(len(paths), 2 * SHOWN))]
    picks = [(i, why) for i, why in picks if i < len(paths) and i < len(ref["preview_detections"])]
    if picks:
        fig, axes = plt.subplots(1, len(picks), figsize=(3.4 * len(picks), 3.8), squeeze=False)
        for ax, (i, why) in zip(axes[0], picks):
            img = _photo(paths[i])
            if img is not None:
                ax.imshow(img)
            _draw(ax, (ref.get("preview_ground_truth") or [[]] * (i + 1))[i], "white", 0, "annotation", dashed=True)
            _draw(ax, ref["preview_detections"][i], "tab:green", threshold, "float")
            for j, a in enumerate(measured):
                dets = a["metrics"]["preview_detections"]
                if i < len(dets):
                    _draw(ax, dets[i], ARTIFACT_COLOURS[j % len(ARTIFACT_COLOURS)], threshold, a["name"])
            ax.axis("off")
            ax.set_title(f"{paths[i].rsplit('/', 1)[-1]}\n{why}", fontsize=7)
        handles, labels = axes[0][0].get_legend_handles_labels()
        if handles:
            axes[0][0].legend(fontsize=6, loc="lower left", framealpha=0.7)
        who = f" of {shown['name']}" if shown else ""
        fig.suptitle(f"validation photos: annotation (dashed), float and artifact boxes scoring >= {threshold:g}; "
                     f"best and worst agreement{who} with the float model", fontsize=8)
        out["detections_on_images"] = svg(fig)
        plt.close(fig)
    curves = [("float", "black", ref)] + [(a["name"], ARTIFACT_COLOURS[j % len(ARTIFACT_COLOURS)], a["metrics"])
                                          for j, a in enumerate(measured)]
    if ref.get("pr_curve50"):
        fig, ax = plt.subplots(figsize=(4.8, 3.6))
        for name, colour, m in curves:
            recall = m.get("recall_points") or []
            for cls, precision in (m.get("pr_curve50") or {}).items():
                label = name if len(m["pr_curve50"]) == 1 else f"{name} {cls}"
                ax.plot(recall[:len(precision)], precision, color=colour, lw=1.5 if name == "float" else 1.0,
                        label=f"{label} (AP50 {m.get('ap50', float('nan')):.3f})")
        ax.set_xlabel("recall")
        ax.set_ylabel("precision (interpolated)")
        ax.set_xlim(0, 1), ax.set_ylim(0, 1.02)
        ax.set_title("precision-recall at IoU 0.5", fontsize=9)
        ax.legend(fontsize=6, loc="lower left")
        out["precision_recall"] = svg(fig)
        plt.close(fig)
    return out
