"""Bring your own model: load a user's trained Keras model safely and wrap it so it takes pixels.

The model (a `.keras` file, a Keras h5 or a Keras SavedModel folder) is not trained: in float it is
the reference every artifact is compared with. It is read in Keras' safe mode. Keras refuses a
`Lambda` layer only in the `.keras` format; h5 and SavedModel files would run the code stored in
them, so edgecv reads the model's config first and refuses any `Lambda` layer itself unless the
user opts in. The declared preprocessing becomes edgecv's `normalize` layer in front of the model,
so artifacts take RGB pixels like every other edgecv build.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import inspect
import json
import re
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Optional

from edgecv.errors import ConfigError
from edgecv.files import file_key
from edgecv.models.preprocess import user_normalization

UNSAFE_FLAG = "--unsafe-deserialization (recipe: model.unsafe_deserialization: true)"
CUSTOM_OPTION = "--custom-objects package.module (recipe: model.custom_objects)"


class UnsafeModelError(ConfigError):
    """The model needs code edgecv will not run without being told to."""


def model_format(path: Path) -> str:
    path = Path(path)
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return "savedmodel"
        raise ConfigError(f"model {path}: a folder without saved_model.pb is not a SavedModel")
    if not path.is_file():
        raise ConfigError(f"model {path}: no such file or folder")
    suffix = path.suffix.lower()
    if suffix == ".keras":
        return "keras"
    if suffix in (".h5", ".hdf5"):
        return "h5"
    raise ConfigError(f"model {path}: give a .keras file, a Keras .h5 file or a SavedModel folder "
                      "(a .tflite or .onnx file is already an artifact: use `edgecv validate` / `edgecv bench`)")


def model_digest(path: Path) -> str:
    """sha256 of the model's bytes (every file of a SavedModel folder): the train stage's key."""
    path = Path(path)
    if path.is_file():
        return file_key(path)
    h = hashlib.sha256()
    for p in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(p.relative_to(path)).encode() + b"\0" + file_key(p).encode())
    return h.hexdigest()


def read_config(path: Path) -> Optional[dict]:
    """The model's Keras config ({class_name, config}) read from the file without building it;
    None when the file has none (a SavedModel not written by Keras). A damaged file is a ConfigError."""
    try:
        return _read_config(path)
    except ConfigError:
        raise
    except (OSError, KeyError, ValueError, RecursionError, zipfile.BadZipFile) as e:  # ValueError: bad JSON too
        raise ConfigError(f"model {path} cannot be read as a Keras model ({type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else e!r}): is the file damaged or of another kind? "
                          "Save it again from Keras with model.save('model.keras')") from None


def _read_config(path: Path) -> Optional[dict]:
    fmt = model_format(path)
    if fmt == "keras":
        with zipfile.ZipFile(path) as z:
            return _config_dict(json.loads(z.read("config.json")))
    if fmt == "h5":
        import h5py

        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
        if raw is None:
            raise ConfigError(f"model {path}: this h5 file holds weights only (no model_config). For a "
                              "keras-applications file name its architecture: --architecture MobileNetV2 (recipe: "
                              "model.architecture); otherwise save the whole model with model.save('model.keras')")
        return _config_dict(json.loads(raw.decode() if isinstance(raw, bytes) else raw))
    meta = Path(path) / "keras_metadata.pb"
    if not meta.is_file():
        return None
    from edgecv._keras import keras  # noqa: F401  (tf_keras' protobuf module needs TensorFlow set up)
    from tf_keras.protobuf import saved_metadata_pb2

    saved = saved_metadata_pb2.SavedMetadata()
    saved.ParseFromString(meta.read_bytes())
    root = next((n for n in saved.nodes if n.node_path == "root"), None)
    return _config_dict(json.loads(root.metadata)) if root is not None else None


def _config_dict(config) -> dict:
    if not isinstance(config, dict):
        raise ValueError(f"its model config is a {type(config).__name__}, not a mapping")
    return config


def iter_layers(config: dict) -> Iterator[dict]:
    """Every layer config in a model config, nested models included."""
    for layer in (config.get("config") or {}).get("layers", []) if isinstance(config.get("config"), dict) else []:
        if isinstance(layer, dict):
            yield layer
            yield from iter_layers(layer)


NORMALIZING_LAYERS = ("Rescaling", "Normalization")


def first_layer(config: Optional[dict]) -> Optional[str]:
    """Class name of the model's first layer after its input (None: no config to read)."""
    for layer in iter_layers(config or {}):
        if layer.get("class_name") not in ("InputLayer", None):
            return layer["class_name"]
    return None


LAMBDA_CLASSES = ("Lambda", "__lambda__")  # a Lambda layer; a lambda function anywhere (.keras format)


def lambda_layers(config: Optional[dict]) -> list[str]:
    """Names of every Lambda layer or serialized lambda anywhere in the config, wrappers included
    (TimeDistributed, Bidirectional and nested models hold theirs outside `layers`)."""
    found, stack = [], [config or {}]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if node.get("class_name") in LAMBDA_CLASSES:
                cfg = node.get("config") if isinstance(node.get("config"), dict) else {}
                found.append(str(cfg.get("name") or node.get("name") or node.get("class_name")))
            stack.extend(node.values())
    return found


def check_safe(path: Path, config: Optional[dict], unsafe: bool) -> None:
    """Refuse Lambda layers (their code runs on loading) unless the user accepts the risk."""
    lambdas = lambda_layers(config)
    if lambdas and not unsafe:
        raise UnsafeModelError(
            f"model {path} has Lambda layer(s) {', '.join(lambdas)}: loading one runs Python code stored in the "
            "file, so Keras' safe mode refuses it. Either rewrite the layer as a registered custom layer and "
            f"pass its module with {CUSTOM_OPTION}, or, only if you trust where the file came from, load it "
            f"with {UNSAFE_FLAG}")


def custom_objects(module_path: Optional[str]) -> dict:
    """The module's `custom_objects` dict, else its public classes and functions by name."""
    if not module_path:
        return {}
    try:
        module = importlib.import_module(module_path)
    except ImportError as e:
        raise ConfigError(f"custom_objects {module_path}: cannot import it ({e}); give an importable module "
                          "path such as mypackage.layers (on PYTHONPATH)") from None
    given = getattr(module, "custom_objects", None)
    if isinstance(given, dict):
        return dict(given)
    return {n: o for n, o in vars(module).items() if not n.startswith("_")
            and (inspect.isclass(o) or inspect.isfunction(o)) and getattr(o, "__module__", "") == module.__name__}


@contextlib.contextmanager
def custom_object_scope(module_path: Optional[str]):
    if not module_path:
        yield
        return
    from edgecv._keras import keras

    with keras.utils.custom_object_scope(custom_objects(module_path)):
        yield


_UNKNOWN = re.compile(r"Unknown (\w+)(?: type)?: '?([\w>.]+)'?")


def unknown_layers(config: Optional[dict], objects: dict) -> list[str]:
    """`name (Class)` of each layer whose class neither Keras nor the custom objects define."""
    from edgecv._keras import keras

    def known(layer: dict) -> bool:
        cls = layer.get("class_name", "")
        registered = layer.get("registered_name") or cls
        return bool(cls in objects or registered in objects or hasattr(keras.layers, cls)
                    or cls in ("Functional", "Sequential", "Model")
                    or keras.utils.get_registered_object(registered) is not None)

    return [f"{(l.get('config') or {}).get('name', '?')} ({l.get('class_name')})" for l in iter_layers(config or {})
            if not known(l)]


def _from_applications(path: str, architecture: str, alpha: Optional[float]):
    """A weights-only h5 (the keras-applications files) loaded into its architecture."""
    from edgecv._keras import keras

    ctor = getattr(keras.applications, architecture, None)
    if ctor is None or not callable(ctor):
        raise ConfigError(f"model.architecture {architecture!r} is not a keras.applications model (e.g. "
                          "MobileNetV2, ResNet50, EfficientNetB0)")
    try:
        return ctor(weights=path, **({"alpha": alpha} if alpha is not None else {}))
    except (ValueError, TypeError, OSError) as e:
        raise ConfigError(f"model {path} does not fit keras.applications.{architecture}"
                          f"{f' (alpha {alpha})' if alpha is not None else ''}: {str(e).splitlines()[0]}") from None


def load_keras(path: Path, module_path: Optional[str] = None, unsafe: bool = False, scope=None):
    """The one way edgecv reads a Keras model file (a user's model, a cached task model, `embed`'s
    model): its config is read first and a Lambda layer (its code would run on loading) or a layer
    class nobody defined is refused by name unless `unsafe`; then Keras loads it in safe mode. A
    file Keras cannot read is a ConfigError (exit 2), never a crash. `scope`: a context manager
    factory that makes edgecv's own wrapped layers known (the QAT pass's)."""
    from edgecv._keras import keras

    path = Path(path)
    config = read_config(path)
    check_safe(path, config, unsafe)
    with (scope() if scope is not None else custom_object_scope(module_path)):
        unknown = unknown_layers(config, custom_objects(module_path))
        if unknown:
            raise ConfigError(f"model {path} uses layer(s) Keras does not know: {', '.join(unknown)}. Pass the module "
                              f"that defines them with {CUSTOM_OPTION}")
        try:
            return keras.models.load_model(path, compile=False, safe_mode=not unsafe)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError) as e:
            msg = str(e)
            unknown = _UNKNOWN.search(msg)
            if unknown:
                raise ConfigError(f"model {path} uses a custom {unknown.group(1)} {unknown.group(2)!r} that Keras "
                                  f"does not know: pass the module that defines it with {CUSTOM_OPTION}") from None
            if "Lambda" in msg or "safe_mode" in msg or "lambda" in msg:
                raise UnsafeModelError(f"model {path}: Keras' safe mode refused it ({msg.splitlines()[0]}). Load it "
                                       f"with {UNSAFE_FLAG} only if you trust where the file came from") from None
            first = msg.splitlines()[0] if msg else repr(e)
            raise ConfigError(f"model {path} could not be loaded by Keras ({type(e).__name__}: {first})") from None
        except (OSError, zipfile.BadZipFile) as e:
            raise ConfigError(f"model {path} could not be read: {e}") from None


@lru_cache(maxsize=4)
def _load(path: str, digest: str, module_path: Optional[str], unsafe: bool, architecture: Optional[str],
          alpha: Optional[float]):
    if architecture:
        return _from_applications(path, architecture, alpha)
    return load_keras(Path(path), module_path, unsafe)


def load_user_model(path: Path, module_path: Optional[str] = None, unsafe: bool = False,
                    architecture: Optional[str] = None, alpha: Optional[float] = None):
    """The user's Keras model, read safely (a cached instance per file content and options)."""
    if model_format(path) == "savedmodel" and not (Path(path) / "keras_metadata.pb").is_file():
        raise ConfigError(f"model {path} is a SavedModel not written by Keras (no keras_metadata.pb): edgecv needs "
                          "the Keras model; save it from Keras with model.save(...) or export it as .keras")
    return _load(str(Path(path).resolve()), model_digest(path), module_path, unsafe, architecture, alpha)


def recipe_model(recipe):
    """The recipe's `model.path`, loaded with the recipe's options."""
    m = recipe.model
    return load_user_model(recipe.resolve(m.path), m.custom_objects, m.unsafe_deserialization, m.architecture,
                           m.alpha)


def image_input_shape(model, path) -> tuple[Optional[int], Optional[int]]:
    """(height, width) of the model's one NHWC RGB image input; None where it is dynamic."""
    if len(model.inputs) != 1:
        raise ConfigError(f"model {path} has {len(model.inputs)} inputs ({', '.join(i.name for i in model.inputs)}): "
                          "edgecv builds models with one image input")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[-1] != 3:
        hint = " (channels first: edgecv artifacts are NHWC)" if len(shape) == 4 and shape[1] == 3 else ""
        raise ConfigError(f"model {path}: input shape {list(shape)} is not an RGB image batch [N, H, W, 3]{hint}; "
                          "edgecv builds models whose input is an image")
    if not model.inputs[0].dtype.is_floating:
        raise ConfigError(f"model {path}: input dtype {model.inputs[0].dtype.name} is not a float image input")
    return shape[1], shape[2]


def output_names(model) -> list[str]:
    """The model's output names, made safe for signatures and ONNX (letters, digits, _)."""
    names = [re.sub(r"\W", "_", n) for n in model.output_names]
    if len(set(names)) != len(names):
        names = [f"{n}_{i}" for i, n in enumerate(names)]
    return names


def model_facts(recipe) -> dict:
    """What the index and the report need from the user's model: its outputs and input size."""
    m = recipe.model
    model = recipe_model(recipe)
    names = output_names(model)
    shapes = [[None if d is None else int(d) for d in o.shape] for o in model.outputs]
    return {"model_file": str(recipe.resolve(m.path)),
            "outputs": [{"name": n, "shape": ["N", *s[1:]]} for n, s in zip(names, shapes)],
            "input_size": list(image_input_shape(model, m.path))}


def declared_input_size(config: Optional[dict]) -> Optional[tuple]:
    """(height, width) of a one-input model's image input as its config states it (no TensorFlow
    needed: a rebuild with everything cached stays light); None where the config does not say."""
    cfg = (config or {}).get("config")
    if not isinstance(cfg, dict) or not cfg.get("layers"):
        return None
    layers = cfg["layers"]
    if config.get("class_name") == "Sequential":
        shape = (layers[0].get("config") or {}).get("batch_input_shape")
    else:
        inputs = cfg.get("input_layers") or []
        if len(inputs) != 1:
            return None
        name = inputs[0][0] if isinstance(inputs[0], list) else None
        layer = next((l for l in layers if (l.get("config") or {}).get("name") == name), None)
        shape = ((layer or {}).get("config") or {}).get("batch_input_shape")
    if isinstance(shape, dict):  # SavedModel metadata writes tuples as {"class_name": "__tuple__", "items": [...]}
        shape = shape.get("items")
    if not isinstance(shape, list) or len(shape) != 4 or shape[-1] != 3:
        return None  # let the loaded model say what is wrong
    return shape[1], shape[2]


def with_input_size(recipe):
    """The recipe with `input.size` taken from the model when its input is fixed; a dynamic input
    needs `input.size`, and a stated size must match a fixed one."""
    m = recipe.model
    declared = None if m.architecture else declared_input_size(read_config(recipe.resolve(m.path)))
    h, w = declared or image_input_shape(recipe_model(recipe), m.path)
    stated = "size" in recipe.input.model_fields_set
    if h is None or w is None:
        if not stated:
            raise ConfigError(f"model {m.path} takes images of any size ({h}x{w}): state the size to build for "
                              "with input.size: [height, width] (edgecv export: --input-size H W)")
        return recipe
    if stated and tuple(recipe.input.size) != (h, w):
        raise ConfigError(f"input.size {list(recipe.input.size)} differs from the model's fixed input {h}x{w}: "
                          "remove input.size (it is read from the model)")
    return recipe.model_copy(update={"input": recipe.input.model_copy(update={"size": (int(h), int(w))})})


def build_user_task_model(recipe, info: dict, task=None):
    """Pixels in, the declared normalization, the user's model: the float reference."""
    from edgecv._keras import keras
    from edgecv.models.build import TaskModel, normalization_layer

    m = recipe.model
    task = task or recipe.make_task()
    user = recipe_model(recipe)
    names = task.output_names(info)
    if len(user.outputs) != len(names):
        raise ConfigError(f"model {m.path} has {len(user.outputs)} outputs; task {task.name} expects "
                          f"{len(names)} ({', '.join(names)}): use --task generic for any named outputs")
    h, w = recipe.input.size
    norm = user_normalization(m.preprocess or m.architecture)
    inputs = keras.Input((h, w, 3), name="image")
    layer = normalization_layer(norm)
    outputs = user(layer(inputs) if layer is not None else inputs)
    if isinstance(outputs, dict):
        outputs = [outputs[k] for k in user.output_names]
    own = output_names(user)
    if set(own) == set(names) and own != list(names):  # the task's outputs by name, in another order
        outputs = [outputs[own.index(n)] for n in names]
    model = keras.Model(inputs, outputs, name=f"{recipe.name}_{task.name}")
    return TaskModel(model, recipe.task, dict(info), (h, w), norm, f"user:{Path(m.path).name}", [],
                     task_options=dict(recipe.task_options), custom_objects=m.custom_objects,
                     unsafe_deserialization=m.unsafe_deserialization)
