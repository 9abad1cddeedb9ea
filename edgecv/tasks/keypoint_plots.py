"""report.html panels for keypoints: float vs artifact points on a few validation images, and the
error per keypoint of each artifact (where int8 loses, point by point)."""

from __future__ import annotations

from typing import Dict

import numpy as np
from edgecv.data.images import ImageDecodeError, load_image
from edgecv.figures import pyplot, svg

ARTIFACT_COLOURS = ["tab:red", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive"]


def _preview_image(path: str, size, policy: str):
    try:
        return load_image(path, tuple(size), policy)
    except (ImageDecodeError, OSError):
        return None


def keypoint_plots(report: dict) -> Dict[str, str]:
    plt = pyplot()
    info = report.get("task_info") or {}
    ref = (report.get("reference") or {}).get("metrics") or {}
    measured = [a for a in report.get("artifacts", []) if (a.get("metrics") or {}).get("preview_points")]
    if plt is None or not ref.get("preview_points") or not measured:
        return {}
    out = {}
    size, policy = info.get("input_size", [128, 128]), info.get("resize", "resize")
    h, w = size
    paths = info.get("preview_images", [])[:len(ref["preview_points"])]
    if paths:
        fig, axes = plt.subplots(1, len(paths), figsize=(3.2 * len(paths), 3.6), squeeze=False)
        for i, (ax, path) in enumerate(zip(axes[0], paths)):
            img = _preview_image(path, size, policy)
            if img is not None:
                ax.imshow(img, extent=(0, w, h, 0))
            ax.set_xlim(0, w), ax.set_ylim(h, 0), ax.axis("off")
            target = np.asarray(ref["preview_targets"][i])
            labelled = target[:, 2] > 0
            ax.scatter(target[labelled, 0] * w, target[labelled, 1] * h, s=10, marker="x", c="white", lw=0.8,
                       label="annotation")
            pts = np.asarray(ref["preview_points"][i])
            ax.scatter(pts[:, 0] * w, pts[:, 1] * h, s=9, c="tab:green", label="float")
            for j, a in enumerate(measured):
                p = np.asarray(a["metrics"]["preview_points"][i])
                ax.scatter(p[:, 0] * w, p[:, 1] * h, s=5, c=ARTIFACT_COLOURS[j % len(ARTIFACT_COLOURS)],
                           label=a["name"])
            ax.set_title(path.rsplit("/", 1)[-1], fontsize=8)
        axes[0][0].legend(fontsize=7, loc="lower left", framealpha=0.7)
        fig.suptitle("validation images: annotation, float model and artifacts (pixels of the input)", fontsize=9)
        out["keypoints_on_images"] = svg(fig)
        plt.close(fig)
    ref_err = ref.get("per_keypoint_nme")
    if ref_err:
        names = info.get("keypoint_names") or [str(i) for i in range(len(ref_err))]
        x = np.arange(len(ref_err))
        fig, ax = plt.subplots(figsize=(max(6, 0.13 * len(ref_err)), 3.2))
        ax.plot(x, [np.nan if e is None else e for e in ref_err], "k-", lw=1.5, label="float")
        for j, a in enumerate(measured):
            err = a["metrics"].get("per_keypoint_nme") or []
            ax.plot(x[:len(err)], [np.nan if e is None else e for e in err], lw=0.9,
                    c=ARTIFACT_COLOURS[j % len(ARTIFACT_COLOURS)], label=a["name"])
        step = max(1, len(names) // 24)
        ax.set_xticks(x[::step], [names[i] for i in x[::step]], rotation=60, ha="right", fontsize=6)
        ax.set_ylabel("NME per keypoint")
        ax.set_title("error per keypoint")
        ax.legend(fontsize=7)
        out["per_keypoint_error"] = svg(fig)
        plt.close(fig)
    return out
