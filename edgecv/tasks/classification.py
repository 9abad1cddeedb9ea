"""Image classification: one sub-folder per class in, softmax `probabilities [N, C]` out.

Judged by top-1/top-5 accuracy, per-class recall and the confusion matrix; agreement with the
float model is the share of images whose top-1 class is the same.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from edgecv.errors import ConfigError
from edgecv.tasks.base import ColumnSpec, GateSpec, MetricSpec, OutputSpec, Task, drop_gate
from edgecv.data.index import build_index
from edgecv.data.user_labels import user_classification_index
from edgecv.figures import pyplot, svg
from edgecv.tasks.classification_folder import read_class_folder, class_targets, class_report, print_per_image

OUTPUT = "probabilities"
ACCURACY = MetricSpec("accuracy", True, "%", "top-1 accuracy on the validation split", ".2f", 0.5,
                      per_sample="share", scale=100.0)
TOP5 = MetricSpec("top5_accuracy", True, "%", "top-5 accuracy (more than 5 classes)", ".2f")
TOP1_AGREEMENT = MetricSpec("top1_agreement", True, "", "share of images whose top-1 class matches the float model's",
                            ".3f")


def classification_metrics(scores: np.ndarray, labels: np.ndarray, num_classes: Optional[int] = None) -> dict:
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels, np.int64)
    n_cls = num_classes or scores.shape[1]
    pred = scores.argmax(axis=1)
    acc = float((pred == labels).mean() * 100) if len(labels) else float("nan")
    top5 = None
    if scores.shape[1] > 5:
        top5_idx = np.argsort(-scores, axis=1)[:, :5]
        top5 = float((top5_idx == labels[:, None]).any(axis=1).mean() * 100)
    cm = np.zeros((n_cls, n_cls), np.int64)
    np.add.at(cm, (labels, np.clip(pred, 0, n_cls - 1)), 1)
    support = cm.sum(axis=1)
    recall = [float(cm[i, i] / support[i]) if support[i] else float("nan") for i in range(n_cls)]
    return {"count": int(len(labels)), "accuracy": acc, "top5_accuracy": top5, "per_class_recall": recall,
            "confusion_matrix": cm.tolist()}


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores per row, best first."""
    return np.argsort(-np.asarray(scores), axis=1, kind="stable")[:, :k]  # ties: first index, as argmax


class Classification(Task):
    name = "classification"
    description = "one label per image from class sub-folders; softmax probabilities out"
    metrics = (ACCURACY, TOP5)
    agreement_metrics = (TOP1_AGREEMENT,)
    gates = (
        GateSpec("accuracy_min", "metrics", "accuracy", "min", unit="%", description="task accuracy, percent"),
        drop_gate(ACCURACY, " points"),
        GateSpec("top1_agreement_min", "agreement", "top1_agreement", "min",
                 description="fraction of images where artifact and reference agree"),
    )
    quality_metric = "accuracy"
    columns = (
        ColumnSpec("accuracy", "accuracy", "metrics", "accuracy", ".2f", "%"),
        ColumnSpec("delta", "Δ", "deltas", "accuracy", "+.2f"),
        ColumnSpec("agreement", "top-1 agree", "agreement", "top1_agreement", ".3f"),
    )
    monitor = ("val_accuracy", "max")
    device_default_for = ("folder",)
    sidecar_names = ("labels.txt",)

    # ---- data ----------------------------------------------------------------------------------
    def read_data(self, recipe):
        if recipe.model.path is not None:  # a user's classifier: its labels file names the classes

            outputs = recipe.model_facts()["outputs"]
            if len(outputs) != 1 or len(outputs[0]["shape"]) != 2:
                raise ConfigError(f"model {recipe.model.path}: classification needs one [N, classes] output, it has "
                                  f"{[o['shape'] for o in outputs]}; use --task generic to compare any outputs")
            return user_classification_index(recipe, int(outputs[0]["shape"][1]))
        return build_index(recipe.data, recipe.resolve)

    def targets(self, samples: Sequence, info: dict) -> Optional[np.ndarray]:
        if any(s.label is None for s in samples):  # unlabelled images: judged by agreement only
            return None
        return np.array([s.label for s in samples], np.int64)

    # ---- model ---------------------------------------------------------------------------------
    def output_spec(self, info: dict) -> List[OutputSpec]:
        n = len(info.get("class_names", [])) or "C"
        return [OutputSpec(OUTPUT, ("N", n), "float32", "softmax; index i is line i of labels.txt")]

    def build_head(self, features, recipe, info: dict):
        from edgecv._keras import keras

        head = recipe.model.head
        y = (keras.layers.GlobalAveragePooling2D if head.pooling == "avg" else keras.layers.GlobalMaxPooling2D)(
            name="pool")(features)
        for i, units in enumerate(head.hidden_units):
            y = keras.layers.Dense(units, activation="relu", name=f"head_dense{i}")(y)
        if head.dropout:
            y = keras.layers.Dropout(head.dropout, name="head_dropout")(y)
        y = keras.layers.Dense(len(info["class_names"]), name="logits")(y)
        return keras.layers.Activation("softmax", dtype="float32", name=OUTPUT)(y)

    def loss(self, recipe):
        from edgecv._keras import keras

        return keras.losses.CategoricalCrossentropy(label_smoothing=recipe.train.label_smoothing)

    def keras_metrics(self) -> list:
        return ["accuracy"]

    def keras_target(self, y, info: dict):
        from edgecv._keras import tf

        return tf.one_hot(y, len(info["class_names"]))

    def distill_outputs(self, keras_model):
        from edgecv._keras import keras

        return keras.Model(keras_model.input, keras_model.get_layer("logits").output)

    def distillation_loss(self, y_true, student, teacher, temperature: float, weight: float):
        """Hinton et al.: cross-entropy with the labels plus KL to the teacher's softened logits."""
        from edgecv._keras import keras, tf

        hard = keras.losses.categorical_crossentropy(y_true, student, from_logits=True)
        t = tf.nn.softmax(teacher / temperature)
        log_s = tf.nn.log_softmax(student / temperature)
        soft = tf.reduce_sum(t * (tf.math.log(t + 1e-12) - log_s), axis=-1) * temperature**2
        hard, soft = tf.reduce_mean(hard), tf.reduce_mean(soft)
        return (1.0 - weight) * hard + weight * soft, hard, soft

    def serving_outputs(self, outputs: Dict, images, info: dict) -> Dict:
        from edgecv._keras import tf

        return {**outputs, "class_id": tf.argmax(outputs[OUTPUT], axis=-1, output_type=tf.int32)}

    def coreml_classifier_labels(self, info: dict) -> Optional[List[str]]:
        return [str(c) for c in info["class_names"]]

    # ---- judging -------------------------------------------------------------------------------
    def evaluate(self, outputs: Dict[str, np.ndarray], targets, info: dict) -> dict:
        if targets is None:
            return {}
        return classification_metrics(outputs[OUTPUT], targets, len(info.get("class_names", [])) or None)

    def sample_scores(self, outputs: Dict[str, np.ndarray], targets, info: dict) -> Dict[str, np.ndarray]:
        if targets is None:
            return {}
        return {"accuracy": (np.asarray(outputs[OUTPUT]).argmax(axis=1) == np.asarray(targets)).astype(np.float64)}

    def agreement(self, reference: Dict[str, np.ndarray], candidate: Dict[str, np.ndarray], info: dict) -> dict:
        ref, cand = np.asarray(reference[OUTPUT]), np.asarray(candidate[OUTPUT])
        return {"top1_agreement": float((ref.argmax(1) == cand.argmax(1)).mean()) if len(ref) else float("nan")}

    def num_outputs(self, outputs: Dict[str, np.ndarray]) -> int:
        """How many classes the model scores."""
        return int(np.asarray(outputs[OUTPUT]).shape[1])

    def predictions(self, outputs: Dict[str, np.ndarray], k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """(indices, scores) of the top-k classes per image, best first."""
        scores = np.asarray(outputs[OUTPUT])
        idx = top_k(scores, k)
        return idx, np.take_along_axis(scores, idx, axis=1)

    # ---- evaluation on any machine ---------------------------------------------------------------
    def read_device_set(self, data, annotations, info: dict, options: dict):
        return read_class_folder(data, options)

    def device_targets(self, evaluation, outputs, input_size):
        return class_targets(self, evaluation, outputs)

    def device_report(self, evaluation, result, outputs, options: dict) -> dict:
        return class_report(self, evaluation, result, outputs, options.get("top_k") or 5)

    def print_device_report(self, report: dict, artifact, data, out, err, options: dict) -> None:
        """With --per-image every image's top-k; then accuracy with class folders, else the classes
        seen most."""
        from collections import Counter


        for p, why in report["skipped"]:
            err.print(f"[yellow]skipped unreadable image[/] {p}: {why}")
        if options.get("per_image"):
            print_per_image(report, artifact, data, out, options.get("top_k"))
        out.print(f"{artifact.name} on {len(report['images'])} images from {data} (label offset {report['offset']})")
        if report["accuracy"] is not None:
            top5 = "" if report["top5_accuracy"] is None else f", top-5 {report['top5_accuracy']:.2f}%"
            out.print(f"top-1 accuracy {report['accuracy']:.2f}%{top5}")
        else:
            seen = Counter(preds[0][0] for preds in report["predictions"] if preds)
            out.print("most frequent top-1: " + ", ".join(f"{name} ×{n}" for name, n in seen.most_common(5)))
            err.print("[dim]every image's predictions: --per-image (or --json FILE)[/]")

    def bench_fields(self, evaluation, result) -> dict:
        """`accuracy` (top-1, top-5, images, skipped) as bench results have always had it, and `metrics`."""
        m = result.metrics
        if m.get("accuracy") is None:
            return {"accuracy": None, "metrics": {}}
        return {"accuracy": {"top1": m["accuracy"], "top5": m.get("top5_accuracy"), "images": len(evaluation.paths),
                             "skipped": len(evaluation.skipped)},
                "metrics": {"accuracy": m["accuracy"],
                            **({"top5_accuracy": m["top5_accuracy"]} if m.get("top5_accuracy") is not None else {})}}

    # ---- files and reports ---------------------------------------------------------------------
    def sidecars(self, info: dict) -> Dict[str, str]:
        return {"labels.txt": "".join(f"{c}\n" for c in info["class_names"])}

    def report_plots(self, report: dict) -> Dict[str, str]:
        return per_class_plot(report)


def per_class_plot(report: dict) -> Dict[str, str]:
    """Per-class recall change of each measured artifact against the float model: where int8 loses."""
    plt = pyplot()
    ref_recall = ((report.get("reference") or {}).get("metrics") or {}).get("per_class_recall")
    measured = [a for a in report["artifacts"] if (a.get("metrics") or {}).get("per_class_recall")]
    if plt is None or not ref_recall or not measured:
        return {}
    classes = (report.get("task_info") or {}).get("class_names") or [str(i) for i in range(len(ref_recall))]
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(classes)), 3.5))
    width = 0.8 / len(measured)
    changed = False
    for i, a in enumerate(measured):
        deltas = [(r - f) * 100 for r, f in zip(a["metrics"]["per_class_recall"], ref_recall)]
        changed = changed or any(abs(d) > 1e-9 for d in deltas)
        ax.bar([c + i * width for c in range(len(classes))], deltas, width, label=a["name"])
    ax.axhline(0, color="black", lw=0.8)
    if not changed:  # an empty panel would look broken: say what it means
        ax.set_ylim(-1, 1)
        ax.text(0.5, 0.75, "no change: every artifact keeps each class's recall", transform=ax.transAxes,
                ha="center", va="center", fontsize=10, color="#555")
    ax.set_xticks([c + 0.4 - width / 2 for c in range(len(classes))], classes, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("recall Δ vs float (points)")
    ax.set_title("per-class accuracy change")
    ax.legend(fontsize=8)
    out = {"per_class_delta": svg(fig, "per_class_delta")}
    plt.close(fig)
    return out
