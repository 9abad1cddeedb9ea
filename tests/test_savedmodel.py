"""SavedModel for TF Serving: uint8 image signature, named outputs, <name>/<version>/ layout."""

import numpy as np

from edgecv.config.target import ArtifactSpec
from edgecv.exporters import ExportContext, get_exporter
from edgecv.runtimes import detect_format, load_runtime


def test_serving_layout_and_signature(tiny_model, tiny_val, tmp_path):
    spec = ArtifactSpec(name="serving", format="savedmodel", options={"version": 3})
    art = get_exporter("savedmodel")().export(tiny_model, spec, tmp_path, ExportContext("tiny"))
    root = art.path
    assert (root / "3" / "saved_model.pb").is_file()
    assert "base_path: '/models/tiny_serving'" in (root / "models.config").read_text()
    assert (root / "3" / "assets" / "labels.txt").read_text().split() == tiny_model.info["class_names"]
    assert detect_format(root) == "savedmodel"

    images, _ = tiny_val
    ref = tiny_model.keras_model.predict(images.astype(np.float32), verbose=0)
    with load_runtime(root) as rt:
        assert rt.input_dtype == "uint8" and rt.input_size == (32, 32)
        out = rt.predict(images[:5])  # any batch
    assert set(out) == {"probabilities", "class_id"}
    assert np.allclose(out["probabilities"], ref[:5], atol=1e-5)
    assert (out["class_id"] == ref[:5].argmax(1)).all()


def test_serving_savedmodel_carries_no_optimizer_state(tiny_model, tmp_path):
    """The SavedModel is the same whether training ran in this process (the Keras model still
    holding Adam's slots) or came from the cache: weights only, no optimizer variables."""
    from edgecv._keras import tf

    assert tiny_model.keras_model.optimizer is not None  # trained in this test session
    art = get_exporter("savedmodel")().export(tiny_model, ArtifactSpec(name="serving", format="savedmodel"), tmp_path,
                                              ExportContext("tiny"))
    names = [n for n, _ in tf.train.list_variables(str(art.path / "1" / "variables" / "variables"))]
    assert not [n for n in names if "optimizer" in n.lower()], names
    assert len(names) == len(tiny_model.keras_model.weights) + 1  # + the object graph
