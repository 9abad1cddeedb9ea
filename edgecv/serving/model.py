"""The model a server serves: an artifact (SavedModel, TFLite, ONNX) loaded through edgecv's
runtimes, seen as TF Serving sees a servable: a name, a version and named signatures, each a
function from named input arrays to named output arrays.

Signatures: `serving_default` (uint8 pixels at the model's input size, input `images`) and
`serving_encoded` (JPEG/PNG bytes, input `image_bytes`). A SavedModel built by edgecv carries
`serving_encoded` in its graph and that graph runs it; for TFLite and ONNX (and older SavedModels)
the bytes are decoded here with Pillow by preprocessing.json's resize policy, as `edgecv validate`
decodes files.
"""

from __future__ import annotations

import json
import queue
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from edgecv.errors import InputError
from edgecv.formats.savedmodel.encoded_images import ENCODED_INPUT, ENCODED_SIGNATURE
from edgecv.data.images import ImageDecodeError, decode_rgb, resize
from edgecv.files import tree_sha256
from edgecv.formats.savedmodel.runtime import savedmodel_dir
from edgecv.runtimes import load_runtime
from edgecv.runtimes.base import detect_format

DEFAULT_SIGNATURE = "serving_default"
PIXELS_INPUT = "images"
SERVABLE_FILES = (".tflite", ".onnx", ".engine", ".plan")
THREAD_SAFE_FORMATS = ("savedmodel", "onnx")  # one runtime shared by the workers; others get one each
MAX_IMAGE_PIXELS = 64_000_000  # an encoded image whose header claims more is refused before decoding


class RequestError(Exception):
    """A request the server refuses: `status` is the HTTP status, the message says what to fix."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class TensorInfo:
    dtype: str  # numpy dtype name, or "string" for encoded bytes
    shape: tuple  # None for any size (the batch dimension always)


@dataclass
class Signature:
    name: str
    inputs: dict
    outputs: dict
    run: Callable[[dict], dict]  # {input name: array} -> {output name: array}, batch first
    check: Callable[[dict], None] = field(default=lambda inputs: None)  # per-request validation before batching


def find_artifact(path: Path) -> Path:
    """ARTIFACT or TARGET_FOLDER -> the artifact to serve: a SavedModel folder (with models.config
    or numbered versions), a .tflite, an .onnx or a TensorRT .engine/.plan file (on a Jetson or
    an NVIDIA GPU); a target folder must hold exactly one."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix in SERVABLE_FILES:
            return path
        raise InputError(f"{path.name}: edgecv serve takes a SavedModel folder or a {', '.join(SERVABLE_FILES)} file")

    try:
        if detect_format(path) == "savedmodel":
            return path
    except ValueError:
        pass
    found = sorted(p for p in path.iterdir() if p.suffix in SERVABLE_FILES or (p.is_dir() and _is_savedmodel(p)))
    if len(found) == 1:
        return found[0]
    if not found:
        raise InputError(f"{path}: no SavedModel or {', '.join(SERVABLE_FILES)} file inside to serve")
    raise InputError(f"{path} holds {len(found)} artifacts ({', '.join(p.name for p in found)}): name one, "
                     f"e.g. edgecv serve {found[0]}")


def _is_savedmodel(p: Path) -> bool:
    return (p / "saved_model.pb").is_file() or any((v / "saved_model.pb").is_file() for v in p.iterdir() if v.is_dir())


def models_config_name(root: Path) -> Optional[str]:
    """The model name in a SavedModel folder's models.config (TF Serving's, parsed with its proto
    when tensorflow-serving-api is installed)."""
    cfg = root / "models.config"
    if not cfg.is_file():
        return None
    text = cfg.read_text()
    try:
        from google.protobuf import text_format
        from tensorflow_serving.config import model_server_config_pb2
    except ImportError:
        m = re.search(r"name:\s*['\"]([^'\"]+)['\"]", text)
        return m.group(1) if m else None
    try:
        configs = text_format.Parse(text, model_server_config_pb2.ModelServerConfig()).model_config_list.config
    except text_format.ParseError as e:
        raise InputError(f"{cfg}: not a TF Serving model config ({e})") from None
    return configs[0].name if configs else None


def preprocessing_json(artifact: Path) -> dict:
    """preprocessing.json of the artifact's target folder (beside it, or one level up for a
    SavedModel folder), else {}."""
    for folder in (artifact.parent, artifact.parent.parent):
        p = folder / "preprocessing.json"
        if p.is_file():
            try:
                return json.loads(p.read_text())
            except ValueError:
                raise InputError(f"{p}: not valid JSON") from None
    return {}


class RuntimePool:
    """`workers` model calls at once: one runtime shared where its library is thread-safe
    (TensorFlow, onnxruntime), one per worker where it is not (a TFLite interpreter)."""

    def __init__(self, load: Callable, workers: int, thread_safe: bool):
        first = load()
        self.first = first
        self._pool: queue.Queue = queue.Queue()
        for rt in [first] + [load() for _ in range(0 if thread_safe else workers - 1)]:
            self._pool.put(rt)
        self.thread_safe = thread_safe

    def run(self, fn: Callable):
        if self.thread_safe:
            return fn(self.first)
        rt = self._pool.get()
        try:
            return fn(rt)
        finally:
            self._pool.put(rt)

    def close(self) -> None:
        while not self._pool.empty():
            self._pool.get().close()


class ServedModel:
    def __init__(self, path: Path, name: Optional[str] = None, workers: int = 2, threads: Optional[int] = None,
                 input_size: Optional[tuple] = None):
        self.path = find_artifact(path)
        self.format = detect_format(self.path)
        self.version = 1
        if self.format == "savedmodel":
            model_dir = savedmodel_dir(self.path)
            self.version = int(model_dir.name) if model_dir.name.isdigit() else 1
        self.name = name or models_config_name(self.path) or _name_from(self.path)
        self.preprocessing = preprocessing_json(self.path)
        self.resize = self.preprocessing.get("resize", "center_crop")
        size = input_size
        if size is None and self.preprocessing.get("input"):
            size = (self.preprocessing["input"]["height"], self.preprocessing["input"]["width"])
        options = {"input_size": size}
        self.pool = RuntimePool(lambda: load_runtime(self.path, self.format, threads=threads, **options),
                                max(1, workers), thread_safe=self.format in THREAD_SAFE_FORMATS)
        rt = self.pool.first
        self.input_size = tuple(rt.input_size)
        self.library = rt.library
        self.signatures = {DEFAULT_SIGNATURE: self._pixel_signature(rt)}
        self.signatures[ENCODED_SIGNATURE] = self._encoded_signature(rt)

    # ---- signatures ---------------------------------------------------------------------------
    def _pixel_signature(self, rt) -> Signature:
        h, w = self.input_size
        probe = rt.predict(np.zeros((1, h, w, 3), np.uint8))  # warms up and names the outputs
        outputs = {k: TensorInfo(v.dtype.name, (None, *v.shape[1:])) for k, v in probe.items()}
        return Signature(DEFAULT_SIGNATURE, {PIXELS_INPUT: TensorInfo("uint8", (None, h, w, 3))}, outputs,
                         run=lambda inputs: self.pool.run(lambda r: r.predict(inputs[PIXELS_INPUT])))

    def _encoded_signature(self, rt) -> Signature:
        pixels = self.signatures[DEFAULT_SIGNATURE]
        in_graph = getattr(rt, "loaded", None)
        fn = in_graph.signatures.get(ENCODED_SIGNATURE) if in_graph is not None else None
        if fn is not None:  # the SavedModel's own graph decodes, as on TF Serving
            tf = rt._tf

            def run(inputs):
                out = fn(**{ENCODED_INPUT: tf.constant(inputs[ENCODED_INPUT], dtype=tf.string)})
                return {k: v.numpy() for k, v in out.items()}
        else:
            def run(inputs):
                return pixels.run({PIXELS_INPUT: self.decode(inputs[ENCODED_INPUT])})
        return Signature(ENCODED_SIGNATURE, {ENCODED_INPUT: TensorInfo("string", (None,))}, pixels.outputs, run=run,
                         check=self._check_encoded)

    def _check_encoded(self, inputs: dict) -> None:
        """Before batching: every value is an image whose header Pillow reads, at most
        MAX_IMAGE_PIXELS (a corrupt body past the header fails at decoding, for its request only)."""
        import io

        from PIL import Image

        for i, data in enumerate(inputs[ENCODED_INPUT]):
            try:
                with Image.open(io.BytesIO(data)) as img:
                    pixels = img.width * img.height
            except Exception as e:
                why = "Pillow cannot identify it" if type(e).__name__ == "UnidentifiedImageError" else f"{type(e).__name__}: {e}"
                raise RequestError(f"{ENCODED_INPUT}[{i}]: not a readable image ({why}); "
                                   "send JPEG or PNG bytes, base64 in {\"b64\": ...} over REST") from None
            if pixels > MAX_IMAGE_PIXELS:
                raise RequestError(f"{ENCODED_INPUT}[{i}]: {img.width}x{img.height} is over the "
                                   f"{MAX_IMAGE_PIXELS} pixels allowed; send a smaller image", status=413)

    def decode(self, encoded) -> np.ndarray:
        out = np.empty((len(encoded), *self.input_size, 3), np.uint8)
        for i, data in enumerate(encoded):
            try:
                out[i] = resize(decode_rgb(bytes(data), MAX_IMAGE_PIXELS), self.input_size, self.resize)
            except ImageDecodeError as e:
                raise RequestError(f"{ENCODED_INPUT}[{i}]: cannot decode the image ({e})") from None
        return out

    def sha256(self) -> str:
        return tree_sha256(self.path)

    def close(self) -> None:
        self.pool.close()


def _name_from(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem) or "model"
