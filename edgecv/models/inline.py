"""A nested model's layers made the outer model's own (for post-training int8).

A model brought by the user is wrapped (pixels in, its normalization, then the user's model as one
layer), so the wrapper's `layers` hold one Functional layer and no Conv2D or Dense: bias correction
and learned rounding, which walk `layers` and probe each layer's input in the outer graph, found
nothing to do. `inline_nested` rebuilds such a model with every nested functional model's layers
called directly on the outer tensors: copies of the layers with the same weights (a layer called
twice shares one copy), the same function, one flat graph.
"""

from __future__ import annotations

from typing import Optional


def _is_graph_model(layer, keras) -> bool:
    return isinstance(layer, keras.Model) and getattr(layer, "_is_graph_network", False)


def has_nested_model(model) -> bool:
    from edgecv._keras import keras

    return any(_is_graph_model(layer, keras) for layer in getattr(model, "layers", []))


def inline_nested(model) -> tuple[Optional[object], str]:
    """(a flat functional copy of `model`, '') or (None, why it cannot be made)."""
    from edgecv._keras import keras, tf

    if not _is_graph_model(model, keras):
        return None, "the model is not a functional or sequential Keras model"
    copies: dict[int, object] = {}
    used: set[str] = set()

    def copy_of(layer):
        if id(layer) not in copies:
            config = layer.get_config()
            name, n = config.get("name", layer.name), 1
            while config.get("name", name) in used:  # an inner name may repeat an outer one
                config["name"] = f"{name}_{n}"
                n += 1
            used.add(config.get("name", name))
            copies[id(layer)] = (type(layer).from_config(config), layer)
        return copies[id(layer)][0]

    def run(graph, inputs):
        usage = graph._tensor_usage_count
        tensors = {}
        for x, y in zip(graph.inputs, tf.nest.flatten(inputs)):
            tensors[str(id(x))] = [y] * usage[str(id(x))]
        for depth in sorted(graph._nodes_by_depth, reverse=True):
            for node in graph._nodes_by_depth[depth]:
                if node.is_input or any(t not in tensors for t in node.flat_input_ids):
                    continue
                args, kwargs = node.map_arguments(tensors)
                if _is_graph_model(node.layer, keras):
                    if kwargs:
                        raise ValueError(f"nested model {node.layer.name} is called with arguments {sorted(kwargs)}")
                    outputs = run(node.layer, args[0] if len(args) == 1 else args)
                else:
                    outputs = copy_of(node.layer)(*args, **kwargs)
                for x_id, y in zip(node.flat_output_ids, tf.nest.flatten(outputs)):
                    tensors[x_id] = [y] * usage[x_id]
        flat = [tensors[str(id(x))].pop() for x in graph.outputs]
        return tf.nest.pack_sequence_as(graph._nested_outputs, flat)

    try:
        inputs = [keras.Input(type_spec=x.type_spec, name=x.name.split(":")[0]) for x in model.inputs]
        outputs = run(model, inputs)
        flat = keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs, name=model.name)
        for new, old in copies.values():
            new.set_weights(old.get_weights())
    except Exception as e:  # an unusual graph: say so, the export goes on without the int8 techniques
        return None, f"its nested model could not be inlined ({type(e).__name__}: {e})"[:300]
    return flat, ""
