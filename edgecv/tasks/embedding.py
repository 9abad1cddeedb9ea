"""Image embeddings for visual search: class sub-folders in, L2-normalized `embedding [N, D]` out.

Training is metric learning that runs on a CPU in minutes: a CosFace head (large-margin cosine
softmax, Wang et al. 2018) scores the normalized embedding against one learned direction per
class with a margin subtracted from the true class's cosine. The head only shapes the embedding
space: `inference_model` drops it, so no artifact contains it and any number of new classes can be
enrolled later without retraining.

Judged by retrieval: each validation image (a query) searches a gallery made of the training
split (so `eval_samples` is validation + training; `targets` marks which is which). Against the
float model: mean cosine between the embeddings, and cross-compatibility, the artifact's queries
searched in the float model's gallery (a server-enrolled gallery queried from an int8 phone).
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np
from pydantic import Field

from edgecv.tasks.base import ColumnSpec, GateSpec, MetricSpec, OutputSpec, Task, TaskOptions, drop_gate
from edgecv.data.index import build_index
from edgecv.tasks.embedding_report import neighbours_panel, recall_table

OUTPUT = "embedding"
QUERY, GALLERY = 1, 0  # Sample.target of validation / training images
HEAD_LAYER = "cosface_logits"
PANEL_QUERIES = 6  # queries kept with their top-5 neighbours for the report panel

RECALL_1 = MetricSpec("recall_at_1", True, "%", "validation queries whose nearest training image has their class",
                      ".2f", 0.5, per_sample="share", scale=100.0)
RECALL_5 = MetricSpec("recall_at_5", True, "%", "validation queries with their class among the 5 nearest", ".2f")
MAP_R = MetricSpec("map_at_r", True, "%", "mean average precision at R (R = the query's class size in the gallery)",
                   ".2f")
MEAN_COSINE = MetricSpec("mean_cosine", True, "", "mean cosine between artifact and float embeddings", ".4f")
CROSS_RECALL_1 = MetricSpec("cross_recall_at_1", True, "%",
                            "recall@1 of the artifact's queries in the float model's gallery", ".2f")


class EmbeddingOptions(TaskOptions):
    dim: int = Field(128, ge=2, description="embedding size D")
    margin: float = Field(0.35, ge=0.0, lt=1.0, description="CosFace cosine margin m")
    scale: float = Field(30.0, gt=0.0, description="CosFace logit scale s")


# ---- numpy retrieval --------------------------------------------------------------------------
def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def nearest(queries: np.ndarray, gallery: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, cosines) of the k most similar gallery rows per query, best first (exact search)."""
    sims = l2_normalize(queries) @ l2_normalize(gallery).T
    k = min(k, sims.shape[1])
    idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(sims, idx, axis=1), axis=1, kind="stable")
    idx = np.take_along_axis(idx, order, axis=1)
    return idx, np.take_along_axis(sims, idx, axis=1)


def query_hits(queries: np.ndarray, q_labels: np.ndarray, gallery: np.ndarray, g_labels: np.ndarray,
               k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(hits [Q, depth]: is the j-th nearest gallery image of the query's class, each query's class
    size in the gallery); depth covers k and every class size (mAP@R)."""
    class_sizes = np.array([(g_labels == c).sum() for c in q_labels])
    idx, _ = nearest(queries, gallery, int(max(k, class_sizes.max())))
    return g_labels[idx] == q_labels[:, None], class_sizes


def retrieval_metrics(queries: np.ndarray, q_labels: np.ndarray, gallery: np.ndarray, g_labels: np.ndarray,
                      ks: Sequence[int] = (1, 5)) -> dict:
    """recall@k (a same-class image among the k nearest) and mAP@R (Musgrave et al. 2020), in %."""
    q_labels, g_labels = np.asarray(q_labels), np.asarray(g_labels)
    if not len(q_labels) or not len(g_labels):
        return {"count": int(len(q_labels)), "gallery_size": int(len(g_labels))}
    hits, class_sizes = query_hits(queries, q_labels, gallery, g_labels, max(ks))
    out = {"count": int(len(q_labels)), "gallery_size": int(len(g_labels))}
    for k in ks:
        out[f"recall_at_{k}"] = float(hits[:, :k].any(axis=1).mean() * 100)
    ap = np.zeros(len(q_labels))
    for i, r in enumerate(class_sizes):
        if r:
            rel = hits[i, :r]
            precision = np.cumsum(rel) / np.arange(1, r + 1)
            ap[i] = (precision * rel).sum() / r
    out["map_at_r"] = float(ap.mean() * 100)
    return out


def split_eval(outputs: np.ndarray, targets: np.ndarray):
    """(queries, query labels, gallery, gallery labels) from eval-set embeddings and [N, 2] targets."""
    targets = np.asarray(targets)
    labels, is_query = targets[:, 0], targets[:, 1] == QUERY
    return outputs[is_query], labels[is_query], outputs[~is_query], labels[~is_query]


# ---- the task ---------------------------------------------------------------------------------
class Embedding(Task):
    name = "embedding"
    description = "L2-normalized image embeddings for visual search, trained with a CosFace margin head"
    options_model = EmbeddingOptions
    metrics = (RECALL_1, RECALL_5, MAP_R)
    agreement_metrics = (MEAN_COSINE, CROSS_RECALL_1)
    gates = (
        GateSpec("recall_at_1_min", "metrics", "recall_at_1", "min", unit="%", description="recall@1, percent"),
        drop_gate(RECALL_1, " points"),
        GateSpec("map_at_r_min", "metrics", "map_at_r", "min", unit="%", description="mAP@R, percent"),
        GateSpec("cross_recall_at_1_min", "agreement", "cross_recall_at_1", "min", unit="%",
                 description="recall@1 of the artifact's queries in the float model's gallery, percent"),
        GateSpec("cross_recall_at_1_drop_max", "agreement", "cross_recall_at_1_drop", "max", unit=" points",
                 description="float recall@1 minus the artifact-queries-vs-float-gallery recall@1"),
        GateSpec("cosine_min", "agreement", "mean_cosine", "min",
                 description="mean cosine between the artifact's and the float model's embeddings"),
    )
    quality_metric = "recall_at_1"
    columns = (
        ColumnSpec("recall_at_1", "R@1", "metrics", "recall_at_1", ".2f", "%"),
        ColumnSpec("delta", "Δ R@1", "deltas", "recall_at_1", "+.2f"),
        ColumnSpec("recall_at_5", "R@5", "metrics", "recall_at_5", ".2f", "%", short=False),
        ColumnSpec("map_at_r", "mAP@R", "metrics", "map_at_r", ".2f", "%", short=False),
        ColumnSpec("cross", "cross R@1", "agreement", "cross_recall_at_1", ".2f", "%"),
        ColumnSpec("cosine", "cosine", "agreement", "mean_cosine", ".4f"),
    )
    monitor = ("val_accuracy", "max")
    passes_can_train = False  # the CosFace head is gone after training; prune/QAT/swap would need it back

    # ---- data ----------------------------------------------------------------------------------
    def read_data(self, recipe):
        from dataclasses import replace


        index = build_index(recipe.data, recipe.resolve)
        index.train = [replace(s, target=GALLERY) for s in index.train]
        index.val = [replace(s, target=QUERY) for s in index.val]
        return index

    def eval_samples(self, index) -> list:
        return list(index.val) + list(index.train)

    def targets(self, samples: Sequence, info: dict) -> np.ndarray:
        """[N, 2] int64: class index, and 1 for a query (validation) or 0 for a gallery image."""
        return np.array([[s.label, QUERY if s.target == QUERY else GALLERY] for s in samples], np.int64).reshape(-1, 2)

    def encode_targets(self, samples: Sequence, info: dict) -> np.ndarray:
        return np.array([s.label for s in samples], np.int64)

    # ---- model ---------------------------------------------------------------------------------
    def output_spec(self, info: dict) -> List[OutputSpec]:
        return [OutputSpec(OUTPUT, ("N", self.options.dim), "float32", "L2-normalized; compare by dot product")]

    def build_head(self, features, recipe, info: dict):
        """Training outputs: the CosFace cosines. The embedding is the layer `embedding` inside."""
        from edgecv._keras import keras

        head = recipe.model.head
        y = (keras.layers.GlobalAveragePooling2D if head.pooling == "avg" else keras.layers.GlobalMaxPooling2D)(
            name="pool")(features)
        if head.dropout:
            y = keras.layers.Dropout(head.dropout, name="head_dropout")(y)
        y = keras.layers.Dense(self.options.dim, name="projection")(y)
        emb = keras.layers.UnitNormalization(dtype="float32", name=OUTPUT)(y)
        return _cosine_classifier(len(info["class_names"]))(emb)

    def inference_model(self, keras_model):
        from edgecv._keras import keras

        if OUTPUT not in [l.name for l in keras_model.layers] or HEAD_LAYER not in [l.name for l in keras_model.layers]:
            return keras_model
        return keras.Model(keras_model.input, keras_model.get_layer(OUTPUT).output, name=keras_model.name)

    def loss(self, recipe):
        s, m = self.options.scale, self.options.margin

        def cosface_loss(y_true, cosines):
            from edgecv._keras import keras

            return keras.losses.categorical_crossentropy(y_true, s * (cosines - m * y_true), from_logits=True)

        return cosface_loss

    def keras_metrics(self) -> list:
        return ["accuracy"]  # of the margin-free cosine classifier: what keeps the best weights

    def keras_target(self, y, info: dict):
        from edgecv._keras import tf

        return tf.one_hot(y, len(info["class_names"]))

    # ---- judging -------------------------------------------------------------------------------
    def evaluate(self, outputs: Dict[str, np.ndarray], targets, info: dict) -> dict:
        if targets is None:
            return {}
        q, ql, g, gl = split_eval(np.asarray(outputs[OUTPUT]), targets)
        out = retrieval_metrics(q, ql, g, gl)
        out["examples"] = panel_examples(q, ql, g, gl)
        return out

    def sample_scores(self, outputs: Dict[str, np.ndarray], targets, info: dict) -> Dict[str, np.ndarray]:
        """recall@1 hit of each validation query; NaN for the gallery (training) images."""
        if targets is None:
            return {}
        targets = np.asarray(targets)
        q, ql, g, gl = split_eval(np.asarray(outputs[OUTPUT]), targets)
        scores = np.full(len(targets), np.nan)
        if len(ql) and len(gl):
            scores[targets[:, 1] == QUERY] = query_hits(q, ql, g, gl, 5)[0][:, 0]
        return {"recall_at_1": scores}

    def agreement(self, reference: Dict[str, np.ndarray], candidate: Dict[str, np.ndarray], info: dict) -> dict:
        ref, cand = l2_normalize(reference[OUTPUT]), l2_normalize(candidate[OUTPUT])
        return {"mean_cosine": float((ref * cand).sum(axis=1).mean()) if len(ref) else float("nan")}

    def agreement_with_targets(self, reference: Dict[str, np.ndarray], candidate: Dict[str, np.ndarray], targets,
                               info: dict) -> dict:
        """Cross-compatibility: the candidate's queries in the reference's gallery."""
        q, ql, _, _ = split_eval(np.asarray(candidate[OUTPUT]), targets)
        rq, _, g, gl = split_eval(np.asarray(reference[OUTPUT]), targets)
        cross = retrieval_metrics(q, ql, g, gl, ks=(1,))
        same = retrieval_metrics(rq, ql, g, gl, ks=(1,))
        if "recall_at_1" not in cross:
            return {}
        return {"cross_recall_at_1": cross["recall_at_1"],
                "cross_recall_at_1_drop": same["recall_at_1"] - cross["recall_at_1"]}

    # ---- reports -------------------------------------------------------------------------------
    def sidecars(self, info: dict) -> Dict[str, str]:
        return {"labels.txt": "".join(f"{c}\n" for c in info["class_names"])}

    def report_plots(self, report: dict) -> Dict[str, str]:
        return {**recall_table(report), **neighbours_panel(report)}


def panel_examples(q, ql, g, gl, n: int = PANEL_QUERIES) -> list:
    """A few queries (the first of each class, up to n) with their 5 nearest gallery images: eval-set
    indices (queries first, then the gallery), labels and cosines, for the report panel."""
    firsts = [int(np.flatnonzero(ql == c)[0]) for c in np.unique(ql)][:n]
    if not firsts or not len(gl):
        return []
    idx, sims = nearest(q[firsts], g, 5)
    return [{"query": qi, "label": int(ql[qi]), "neighbours": [int(len(ql) + j) for j in row],
             "neighbour_labels": [int(gl[j]) for j in row], "cosines": [round(float(s), 4) for s in srow]}
            for qi, row, srow in zip(firsts, idx, sims)]


def _cosine_classifier(num_classes: int):
    """A layer: cosines between the (normalized) embedding and one learned unit vector per class."""
    from edgecv._keras import keras, tf

    class CosineClassifier(keras.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(name="class_directions", shape=(int(input_shape[-1]), num_classes),
                                     initializer="glorot_uniform", trainable=True)

        def call(self, x):
            return tf.matmul(tf.math.l2_normalize(x, axis=1), tf.math.l2_normalize(self.w, axis=0))

    return CosineClassifier(dtype="float32", name=HEAD_LAYER)
