"""Decode any image file to RGB uint8 and resize it by the recipe's policy.

Pillow decodes here (not tf.io) because it handles CMYK JPEGs, palette and 16-bit PNGs and EXIF
rotation. The same function feeds training, calibration and validation, so every artifact sees
exactly the pixels the reference model saw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
ResizePolicy = Literal["center_crop", "resize", "pad"]
from edgecv.sidecars import PAD_VALUE  # letterbox colour, recorded in preprocessing.json


class ImageDecodeError(ValueError):
    pass


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grayscale: scale to 8 bits instead of clipping at 255
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
    if img.mode in ("RGBA", "LA", "PA"):
        # composite onto white: fully transparent pixels often hold arbitrary colours
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return img.convert("RGB")  # L, CMYK, YCbCr, F, 1 ...


def load_rgb(path: str | Path) -> np.ndarray:
    """Full decode to an HxWx3 uint8 array; raises ImageDecodeError with the reason."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise ImageDecodeError("empty file (0 bytes)")
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            img.load()
            return np.asarray(_to_rgb(img), dtype=np.uint8)
    except ImageDecodeError:
        raise
    except Exception as e:  # Pillow raises many types for corrupt files
        raise ImageDecodeError(f"{type(e).__name__}: {e}") from None


def decode_rgb(data: bytes, max_pixels: int = 64_000_000) -> np.ndarray:
    """Encoded image bytes (a request body's image) to HxWx3 uint8, as `load_rgb` decodes files;
    an image over `max_pixels` is refused before decoding (its header says its size)."""
    import io

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > max_pixels:
                raise ImageDecodeError(f"{img.width}x{img.height} pixels is over the {max_pixels} allowed")
            img = ImageOps.exif_transpose(img)
            img.load()
            return np.asarray(_to_rgb(img), dtype=np.uint8)
    except ImageDecodeError:
        raise
    except Exception as e:
        raise ImageDecodeError(f"{type(e).__name__}: {e}") from None


def resize(rgb: np.ndarray, size: tuple[int, int], policy: ResizePolicy) -> np.ndarray:
    """Resize HxWx3 uint8 to size=(height, width) by policy."""
    h, w = size
    img = Image.fromarray(rgb)
    if policy == "resize":
        out = img.resize((w, h), Image.BILINEAR)
    elif policy == "center_crop":
        out = ImageOps.fit(img, (w, h), Image.BILINEAR, centering=(0.5, 0.5))
    elif policy == "pad":
        out = ImageOps.pad(img, (w, h), Image.BILINEAR, color=(PAD_VALUE,) * 3, centering=(0.5, 0.5))
    else:
        raise ValueError(f"unknown resize policy {policy!r}")
    return np.asarray(out, dtype=np.uint8)


def load_image(path: str | Path, size: tuple[int, int], policy: ResizePolicy) -> np.ndarray:
    return resize(load_rgb(path), size, policy)


def load_batch(paths, size: tuple[int, int], policy: ResizePolicy, workers: int = 4) -> np.ndarray:
    """Decode many images into one NxHxWx3 uint8 array (threads: Pillow releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    paths = list(paths)
    out = np.empty((len(paths), size[0], size[1], 3), np.uint8)
    with ThreadPoolExecutor(workers) as pool:
        for i, arr in enumerate(pool.map(lambda p: load_image(p, size, policy), paths)):
            out[i] = arr
    return out
