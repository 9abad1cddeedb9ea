"""cloud-tfserving's files for real TF Serving: the encoded-image signature (decoding and resizing in
the graph as Pillow does), warm-up records, models.config, batching and monitoring configs parsed
with TF Serving's protos, the Kubernetes manifest validated against Kubernetes' schema."""

import io

import numpy as np
import pytest
import yaml
from PIL import Image

from edgecv.config.target import ArtifactSpec
from edgecv.exporters import ExportContext, get_exporter

pytest.importorskip("tensorflow_serving", reason="needs tensorflow-serving-api (the build and test extras have it)")


@pytest.fixture(scope="module")
def serving_root(tiny_model, tmp_path_factory):
    spec = ArtifactSpec(name="serving", format="savedmodel",
                        options={"version": 2, "batching": {"max_batch_size": 8, "batch_timeout_micros": 500}})
    ctx = ExportContext("tiny", preprocessing={"resize": "center_crop", "pad_value": 0})
    return get_exporter("savedmodel")().export(tiny_model, spec, tmp_path_factory.mktemp("sm"), ctx)


def jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth image with edges (what resampling differences show on), not noise."""
    y, x = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(seed)
    img = np.stack([(x * 255 / w), (y * 255 / h), 128 + 100 * np.sin((x + y) / 9.0)], -1)
    img[(x - w // 3) ** 2 + (y - h // 2) ** 2 < (min(h, w) // 4) ** 2] = rng.integers(0, 256, 3)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("policy", ["center_crop", "resize", "pad"])
@pytest.mark.parametrize("hw", [(90, 120), (333, 250), (224, 224), (301, 500)])
def test_graph_resize_matches_pillow(policy, hw):
    from edgecv._keras import tf
    from edgecv.data.images import decode_rgb, resize
    from edgecv.formats.savedmodel.encoded_images import decode_in_graph, resize_in_graph

    data = jpeg(photo(*hw))
    pil = resize(decode_rgb(data), (64, 48), policy)
    graph = resize_in_graph(decode_in_graph(tf.constant(data)), (64, 48), policy).numpy()
    assert np.array_equal(decode_in_graph(tf.constant(data)).numpy(), decode_rgb(data))  # JPEG decode bit-exact
    assert np.abs(pil.astype(int) - graph.astype(int)).max() <= 1  # Pillow's fixed-point rounding


def test_savedmodel_signatures_and_tf_serving_files(serving_root, tiny_model, tiny_val):
    from google.protobuf import text_format
    from tensorflow_serving.apis import prediction_log_pb2
    from tensorflow_serving.config import model_server_config_pb2

    from edgecv._keras import tf
    from edgecv.data.images import decode_rgb, resize
    from edgecv.serving.tfs_protos import parse

    root = serving_root.path
    assert serving_root.checks["signatures"] == ["serving_default", "serving_encoded"]
    cfg = text_format.Parse((root / "models.config").read_text(), model_server_config_pb2.ModelServerConfig())
    (c,) = cfg.model_config_list.config
    assert (c.name, c.base_path, c.model_platform) == ("tiny", "/models/tiny_serving", "tensorflow")
    batching = parse((root / "batching_parameters.txt").read_text(), "BatchingParameters")
    assert batching.max_batch_size.value == 8 and batching.batch_timeout_micros.value == 500
    assert parse((root / "monitoring.config").read_text(), "MonitoringConfig").prometheus_config.path == \
        "/monitoring/prometheus/metrics"

    loaded = tf.saved_model.load(str(root / "2"))
    records = list(tf.data.TFRecordDataset(str(root / "2" / "assets.extra" / "tf_serving_warmup_requests")))
    assert len(records) == serving_root.checks["warmup_requests"] == 4  # 2 signatures x batch 1 and 8
    for rec in records:
        req = prediction_log_pb2.PredictionLog.FromString(rec.numpy()).predict_log.request
        assert req.model_spec.name == "tiny"
        fn = loaded.signatures[req.model_spec.signature_name]
        out = fn(**{k: tf.constant(tf.make_ndarray(v)) for k, v in req.inputs.items()})  # each record runs
        assert out["probabilities"].shape[0] == tf.make_ndarray(next(iter(req.inputs.values()))).shape[0]

    # the encoded signature gives what the pixel signature gives on Pillow's pixels (any image size)
    images, _ = tiny_val
    sizes = [(40, 56), (32, 32), (71, 33)]
    blobs = [jpeg(np.asarray(Image.fromarray(images[i]).resize((w, h)))) for i, (h, w) in enumerate(sizes)]
    pixels = np.stack([resize(decode_rgb(b), (32, 32), "center_crop") for b in blobs])
    enc = loaded.signatures["serving_encoded"](image_bytes=tf.constant(blobs))
    pix = loaded.signatures["serving_default"](images=tf.constant(pixels))
    assert np.allclose(enc["probabilities"].numpy(), pix["probabilities"].numpy(), atol=0.02)
    assert (enc["class_id"].numpy() == pix["class_id"].numpy()).all()


def test_deployment_files(serving_root):
    root = serving_root.path
    docs = list(yaml.safe_load_all((root / "kubernetes.yaml").read_text()))
    assert [d["kind"] for d in docs] == ["Deployment", "Service", "HorizontalPodAutoscaler"]
    args = docs[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--model_config_file=/models/tiny_serving/models.config" in args
    assert "--batching_parameters_file=/models/tiny_serving/batching_parameters.txt" in args
    assert docs[0]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/v1/models/tiny"
    kserve = yaml.safe_load((root / "kserve.yaml").read_text())
    assert kserve["kind"] == "InferenceService" and kserve["spec"]["predictor"]["tensorflow"]["storageUri"]
    assert "--enable_model_warmup=true" in (root / "Dockerfile").read_text()
    assert "tensorflow_model_server" in (root / "run-tfserving.sh").read_text()
    kv = pytest.importorskip("kubernetes_validate", reason="needs kubernetes-validate (the test extra has it)")
    for d in docs:  # Kubernetes' own OpenAPI schema, strict: an unknown or misspelt field fails
        kv.validate(d, kv.latest_version(), strict=True)
    bad = next(yaml.safe_load_all((root / "kubernetes.yaml").read_text().replace("containerPort", "containerPorts")))
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, kv.latest_version(), strict=True)


def test_bad_savedmodel_options_rejected_while_planning():
    from edgecv.errors import ConfigError

    exp = get_exporter("savedmodel")
    with pytest.raises(ConfigError, match="batching"):
        exp.check_spec(ArtifactSpec(name="s", format="savedmodel", options={"batching": {"max_batch_sise": 4}}))
