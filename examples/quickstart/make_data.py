"""Write scikit-learn's bundled handwritten digits (1,797 8x8 images, 10 classes) as PNG folders.

Runs offline: the digits ship inside scikit-learn. Output: <here>/data/<digit>/<n>.png at 32x32.
"""

from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits


def main(out: Path = Path(__file__).resolve().parent / "data") -> None:
    digits = load_digits()
    for i, (img, label) in enumerate(zip(digits.images, digits.target)):
        folder = out / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (img / 16.0 * 255).round().astype(np.uint8)  # 0..16 ink levels -> 0..255
        Image.fromarray(pixels, "L").resize((32, 32), Image.NEAREST).save(folder / f"{i:04d}.png")
    print(f"wrote {len(digits.images)} images in {len(set(digits.target))} classes to {out}")


if __name__ == "__main__":
    main()
