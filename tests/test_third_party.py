"""edgecv validates TFLite models it did not build (Google's int8 MobileNetV2 in ../shared)."""

import pytest
from typer.testing import CliRunner

from conftest import shared_path
from edgecv.cli.main import app


def test_google_int8_mobilenet_predicts_plausible_classes(tmp_path):
    model = shared_path("models", "mobilenet_v2_1.0_224_quant.tflite")
    images = shared_path("images")
    labels = images / "imagenet_labels.txt"
    r = CliRunner().invoke(app, ["validate", str(model), "--data", str(images), "--labels", str(labels),
                                 "--top-k", "5", "--json", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    import json

    res = json.loads((tmp_path / "r.json").read_text())
    preds = {p.split("/")[-1]: [n for n, _ in top] for p, top in zip(res["images"], res["predictions"])}
    assert res["offset"] == 0  # 1001 outputs, 1001 labels (line 0 = background)
    assert any("parrot" in n or "macaw" in n for n in preds["parrot.jpg"])
    assert any("cat" in n for n in preds["cat.bmp"])
    assert any(n in ("military uniform", "suit", "Windsor tie", "bow tie") for n in preds["grace_hopper.bmp"])


@pytest.mark.parametrize("given,expected", [(None, 1), (0, 0)])
def test_label_offset_auto_for_a_leading_background_line(given, expected):
    from edgecv.tasks.classification_folder import label_offset

    assert label_offset(1001, 1000, given) == expected
