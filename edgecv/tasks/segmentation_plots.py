"""report.html panels for segmentation: a few validation photos with the ground truth, the float
model's and each artifact's class maps side by side, and each artifact's per-class IoU change
against the float model (where int8 loses, class by class)."""

from __future__ import annotations

from typing import Dict

import numpy as np

from edgecv.data.images import ImageDecodeError, load_rgb
from edgecv.data.segmentation import SegmentationClasses, read_label
from edgecv.tasks.segmentation import decode_mask

IGNORE_COLOUR = (0, 0, 0)


def palette(n: int) -> np.ndarray:
    """[256, 3] uint8: a distinct colour per class (tab20, then repeating), black for the rest."""
    from edgecv.figures import pyplot  # lazy: matplotlib, reports only

    plt = pyplot()
    cmap = plt.get_cmap("tab20")
    out = np.zeros((256, 3), np.uint8)
    for i in range(min(n, 255)):
        out[i] = (np.asarray(cmap(i % 20)[:3]) * 255).astype(np.uint8)
    return out


def segmentation_plots(report: dict) -> Dict[str, str]:
    from edgecv.figures import pyplot, svg  # lazy: matplotlib, reports only

    plt = pyplot()
    info = report.get("task_info") or {}
    ref = (report.get("reference") or {}).get("metrics") or {}
    measured = [a for a in report.get("artifacts", []) if (a.get("metrics") or {}).get("preview_masks")]
    if plt is None or not ref.get("preview_masks"):
        return {}
    names = list(info.get("class_names") or [])
    colours = palette(len(names))
    out = {}
    paths = info.get("preview_images", [])[:len(ref["preview_masks"])]
    label_paths = info.get("preview_labels") or []
    if paths and names:
        cls = SegmentationClasses(names)
        rows = []
        for i, path in enumerate(paths):
            try:
                photo = load_rgb(path)
            except (ImageDecodeError, OSError):
                continue
            try:
                gt = read_label(label_paths[i], cls, int(info.get("ignore_index", 255))) if i < len(label_paths) else None
            except (ValueError, OSError):
                gt = None
            maps = [("float", decode_mask(ref["preview_masks"][i]))]
            maps += [(a["name"], decode_mask(a["metrics"]["preview_masks"][i])) for a in measured
                     if i < len(a["metrics"]["preview_masks"])]
            rows.append((path, photo, gt, maps))
        if rows:
            cols = 2 + max(len(r[3]) for r in rows)
            fig, axes = plt.subplots(len(rows), cols, figsize=(2.4 * cols, 1.9 * len(rows)), squeeze=False)
            for r, (path, photo, gt, maps) in enumerate(rows):
                panels = [(path.rsplit("/", 1)[-1], photo), ("ground truth", None if gt is None else colours[gt])]
                panels += [(name, colours[m]) for name, m in maps]
                for c in range(cols):
                    ax = axes[r][c]
                    ax.axis("off")
                    if c < len(panels) and panels[c][1] is not None:
                        ax.imshow(panels[c][1])
                        ax.set_title(panels[c][0], fontsize=7)
            handles = [plt.Rectangle((0, 0), 1, 1, color=colours[i] / 255.0) for i in range(len(names))]
            fig.legend(handles, names, loc="lower center", ncol=min(len(names), 6), fontsize=7, frameon=False)
            fig.suptitle("validation photos: ground truth (black: not labelled), float model and artifacts", fontsize=9)
            fig.tight_layout(rect=(0, 0.06, 1, 0.96))
            out["segmentation_masks"] = svg(fig)
            plt.close(fig)
    ref_iou = ref.get("per_class_iou") or {}
    if ref_iou and measured:
        classes = list(ref_iou)
        x = np.arange(len(classes))
        width = 0.8 / len(measured)
        fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(classes)), 3.2))
        for j, a in enumerate(measured):
            iou = a["metrics"].get("per_class_iou") or {}
            delta = [np.nan if iou.get(c) is None or ref_iou.get(c) is None else 100 * (iou[c] - ref_iou[c])
                     for c in classes]
            ax.bar(x + (j - (len(measured) - 1) / 2) * width, delta, width, label=a["name"])
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(x, classes, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel("IoU − float IoU (points)")
        ax.set_title("per-class IoU change against the float model")
        ax.legend(fontsize=7)
        fig.tight_layout()
        out["per_class_iou_change"] = svg(fig)
        plt.close(fig)
    return out
