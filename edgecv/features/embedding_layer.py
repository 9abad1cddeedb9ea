"""Which layer of a Keras model embeds an image.

A classifier's output is a softmax: as an "embedding" every image lies near a corner of the
simplex, so every search hit of its class scores about 1.0. What embeds is the pooled feature
vector the classifier reads: the input of the last Dense layer, found by walking back from the
output through Softmax, softmax Activation and Dropout. A model whose output is not recognised as
a classifier is used as it is; one that is a classifier but whose tail is not that chain is
refused with the option to name the layer (`--layer`).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from edgecv.errors import ConfigError

PASS_THROUGH = ("Dropout", "SpatialDropout1D", "Reshape", "Flatten")


def _is_softmax(layer) -> bool:
    kind = type(layer).__name__
    activation = getattr(getattr(layer, "activation", None), "__name__", None)
    return kind == "Softmax" or (kind in ("Activation", "Dense") and activation == "softmax")


def _producer(tensor):
    layer, node_index, _ = tensor._keras_history
    return layer, node_index


def _names(km, limit: int = 8) -> str:
    names = [layer.name for layer in km.layers if len(getattr(layer, "output_shape", ()) or ()) == 2][-limit:]
    return ", ".join(names) or ", ".join(layer.name for layer in km.layers[-limit:])


def embedding_model(km, layer: Optional[str] = None, what: str = "the model"):
    """(the Keras model to embed with, the layer it ends at or None for the model's own output)."""
    from edgecv._keras import keras

    if layer is not None:
        try:
            chosen = km.get_layer(layer)
        except ValueError:
            raise ConfigError(f"--layer {layer}: {what} has no layer of that name; its vector-shaped layers near the "
                              f"output: {_names(km)}") from None
        return keras.Model(km.inputs, chosen.output, name=f"{km.name}_{layer}"), layer
    if len(km.outputs) != 1:
        return km, None
    tensor = km.outputs[0]
    last, _ = _producer(tensor)
    if not _is_softmax(last):
        return km, None  # not a classifier's output: used as it is
    if type(last).__name__ != "Dense":  # Softmax / Activation: step to what it normalises
        tensor = last.input
        last, _ = _producer(tensor)
        while type(last).__name__ in PASS_THROUGH:
            tensor = last.input
            last, _ = _producer(tensor)
    if type(last).__name__ != "Dense" or isinstance(last.input, list):
        raise ConfigError(f"{what} ends in a softmax (class probabilities): that is no embedding (every hit of a "
                          f"class would score about 1.0), and no Dense layer feeds it to take the features from. Name "
                          f"the embedding layer with --layer NAME (e.g. one of: {_names(km)})")
    features = last.input
    source, _ = _producer(features)
    while type(source).__name__ in PASS_THROUGH:  # name the pooled layer, not a dropout on it
        features = source.input
        source, _ = _producer(features)
    return keras.Model(km.inputs, features, name=f"{km.name}_{source.name}"), source.name


def looks_like_probabilities(values: np.ndarray) -> bool:
    """Rows that are each a probability distribution over more than one class."""
    v = np.asarray(values, np.float64).reshape(len(values), -1)
    return v.shape[1] > 1 and len(v) > 0 and bool(np.all(v >= -1e-6)) and bool(np.allclose(v.sum(axis=1), 1.0,
                                                                                             atol=2e-3))
