"""Runtime interface: load an artifact, predict on uint8 RGB pixel batches, time itself.

Every runtime takes the same input (N x H x W x 3 uint8 pixels at the model's input size) and
returns float outputs by name, so the comparator never asks which format it is looking at.
Runtimes are imported lazily by format: a device with only `ai-edge-litert` and numpy can run
`edgecv bench` on a .tflite without TensorFlow installed.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable, ClassVar, Optional

import numpy as np

from edgecv.registry import FORMAT_PACKAGES, LazyRegistry
from edgecv.errors import EdgecvError, InputError

# format -> module defining its Runtime subclass (imported only when that format is used)
RUNTIME_MODULES: dict[str, str] = {fmt: f"{package}.runtime" for fmt, package in FORMAT_PACKAGES.items()}
RUNTIMES: LazyRegistry["Runtime"] = LazyRegistry("runtime format", RUNTIME_MODULES)


def pixels_to_input(images: np.ndarray, dtype, float_range: tuple[float, float] = (0.0, 255.0)) -> np.ndarray:
    """The pixel contract: uint8 takes the pixel, int8 takes pixel - 128, float takes the pixel
    value (0..255 for edgecv artifacts; third-party float models may declare another range)."""
    if dtype == np.uint8:
        return images.astype(np.uint8)
    if dtype == np.int8:
        return (images.astype(np.int16) - 128).astype(np.int8)
    lo, hi = float_range
    return (images.astype(np.float32) * ((hi - lo) / 255.0) + lo).astype(dtype)


class RuntimeUnavailable(RuntimeError):
    """The library or hardware this runtime needs is missing here (say which and how to get it)."""


class Runtime(ABC):
    format: ClassVar[str]
    library: ClassVar[str] = ""
    suffixes: ClassVar[tuple[str, ...]] = ()  # the format's file (or folder) suffixes

    @classmethod
    def recognizes(cls, path: Path) -> bool:
        """Whether `path` is an artifact of this format (by its suffix unless the format says more)."""
        return path.suffix in cls.suffixes

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if getattr(cls, "format", None):
            RUNTIMES.register(cls.format, cls)

    fixed_batch: Optional[int] = None  # a model exported for exactly this many images per call

    @classmethod
    def key_settings(cls) -> dict:
        """What besides the target's runtime section decides how this format's artifacts run (edgecv's
        defaults): part of their validate key, so changing a default re-validates."""
        return {}

    def __init__(self, path: Path | str, threads: Optional[int] = None, input_size: Optional[tuple] = None, **options):
        """`input_size` (height, width): what to feed a model that accepts any size."""
        self.path = Path(path)
        self.threads = threads
        self.requested_size = tuple(input_size) if input_size else None
        self.options = options
        t0 = time.perf_counter()
        self._load()
        self.load_seconds = time.perf_counter() - t0

    @abstractmethod
    def _load(self) -> None: ...

    @property
    @abstractmethod
    def input_size(self) -> tuple[int, int]:
        """(height, width) the artifact takes."""

    @property
    def input_dtype(self) -> str:
        return "uint8"

    def resolve_size(self, declared: tuple) -> tuple[int, int]:
        """The (height, width) to feed: the model's own where it declares one, else `input_size`; a
        model that accepts any size and was given none is an error, not 1x1 images."""
        if None not in declared:
            return int(declared[0]), int(declared[1])
        if self.requested_size is None:
            shown = "x".join("?" if d is None else str(d) for d in declared)
            raise InputError(f"{self.path.name} accepts images of any size ({shown}): pass --input-size HEIGHTxWIDTH, "
                             "or keep the build's preprocessing.json beside it")
        return self.requested_size

    def predict_in_fixed_batches(self, images: np.ndarray, run) -> dict[str, np.ndarray]:
        """`run` on exactly `fixed_batch` images per call: the last call padded with zeros, the
        padding's outputs dropped."""
        b = self.fixed_batch
        parts = []
        for i in range(0, len(images), b):
            chunk = images[i:i + b]
            pad = b - len(chunk)
            if pad:
                chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
            parts.append({k: v[:b - pad] for k, v in run(chunk).items()})
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    @abstractmethod
    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """images: N x H x W x 3 uint8 RGB pixels. Returns every output by its name in the artifact
        (floating outputs as float32); the task picks its outputs from these."""

    def predict_all(self, images: np.ndarray, batch: int = 32,
                    progress: Optional[Callable[[float], None]] = None) -> dict[str, np.ndarray]:
        """Every output by name over any number of images, `batch` images per call (edgecv's one
        loop over an evaluation set); `progress(fraction)` hears each batch."""
        parts = []
        for i in range(0, len(images), batch):
            parts.append(self.predict(images[i:i + batch]))
            if progress is not None:
                progress(min(i + batch, len(images)) / len(images))
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]} if parts else {}

    def describe(self) -> dict:
        return {"format": self.format, "library": self.library, "threads": self.threads, **self.options}

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def as_outputs(named) -> dict[str, np.ndarray]:
    """A runtime's outputs by name as numpy: floating outputs as float32, others (class ids,
    counts) as they are."""
    out = {}
    for name, value in dict(named).items():
        value = np.asarray(value)
        out[name] = value.astype(np.float32) if np.issubdtype(value.dtype, np.floating) else value
    return out


def detect_format(path: Path) -> str:
    """The format whose runtime recognizes the file (each declares its suffixes)."""
    path = Path(path)
    for fmt in RUNTIME_MODULES:
        if get_runtime(fmt).recognizes(path):
            return fmt
    known = [s for fmt in RUNTIME_MODULES for s in get_runtime(fmt).suffixes]
    raise ValueError(f"cannot tell the format of {path}: expected {', '.join(known)} or a SavedModel folder")


def get_runtime(fmt: str) -> type[Runtime]:
    return RUNTIMES.get(fmt)


def load_runtime(path: Path | str, fmt: Optional[str] = None, threads: Optional[int] = None, **options) -> Runtime:
    """Load an artifact; a file its runtime cannot read is an InputError that names it."""
    fmt = fmt or detect_format(Path(path))
    cls = get_runtime(fmt)
    try:
        return cls(path, threads=threads, **options)
    except (EdgecvError, RuntimeUnavailable):
        raise
    except Exception as e:  # the library's own message rarely names the file
        raise InputError(f"{path}: cannot be loaded as a {fmt} model ({type(e).__name__}: {e})") from None
