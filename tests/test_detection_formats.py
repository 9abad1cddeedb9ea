"""NMS in every format: each exported detector's detections equal the numpy reference's
(edgecv.metrics.nms) on the same raw outputs, under the contract's names; on a tiny detector
(tests/tiny_detector.py) so each export takes seconds."""

from __future__ import annotations

import numpy as np
import pytest

from edgecv.config.target import ArtifactSpec
from edgecv.exporters import ExportContext, get_exporter
from edgecv.metrics.nms import DETECTION_OUTPUTS, compare_detections
from edgecv.runtimes import load_runtime
from tiny_detector import calibration, images, tiny_detector

AGNOSTIC = {"iou_threshold": 0.4, "score_threshold": 0.4, "max_detections": 8, "per_class": False}
PER_CLASS = {"iou_threshold": 0.5, "score_threshold": 0.42, "max_detections": 8, "per_class": True}


def _export(model, fmt, precision, tmp_path):
    spec = ArtifactSpec(name=f"{fmt}-{precision}", format=fmt, precision=precision)
    return get_exporter(fmt)().export(model, spec, tmp_path, ExportContext("tiny", calibration()))


def _assert_same(reference, candidate, box_atol=1e-5, score_atol=1e-5):
    assert list(DETECTION_OUTPUTS) == [k for k in DETECTION_OUTPUTS if k in candidate], sorted(candidate)
    d = compare_detections(reference, candidate)
    assert d["counts_equal"], d
    # the test means something: detections on most images, the thresholds (not only K) decide how many
    assert sum(c > 0 for c in d["reference_counts"]) >= 3 and len(set(d["reference_counts"])) > 1, d
    assert d["max_box_error"] <= box_atol and d["max_score_error"] <= score_atol and d["class_mismatches"] == 0, d
    return d


@pytest.mark.parametrize("nms", [AGNOSTIC, PER_CLASS], ids=["fast", "regular"])
def test_tflite_float_detections_equal_the_reference(tmp_path, nms):
    model = tiny_detector(nms)
    pp = model.make_task().postprocess(model.info)
    x = images()
    art = _export(model, "tflite", "fp32", tmp_path)
    assert art.metadata["postprocess"]["op"] == "TFLite_Detection_PostProcess"
    assert art.metadata["postprocess"]["variant"] == pp.nms.variant
    with load_runtime(art.path) as rt:
        _assert_same(pp.from_raw(model.predict(x)), rt.predict(x))


def test_tflite_int8_is_integer_except_the_postprocess_which_equals_the_reference(tmp_path):
    """The int8 detector's detections equal the numpy post-process applied to the same int8 model's
    raw outputs (converted without the op from the same calibration): the op adds nothing but
    the post-process."""
    from edgecv.files import atomic_write_bytes
    from edgecv.formats.tflite.checks import inspect_tflite
    from edgecv.formats.tflite.convert import convert

    model = tiny_detector(AGNOSTIC)
    pp = model.make_task().postprocess(model.info)
    x = images()
    raw_path, det_path = tmp_path / "raw.tflite", tmp_path / "det.tflite"
    atomic_write_bytes(raw_path, convert(model.keras_model, "int8", "uint8", False, calibration(),
                                         model.output_names, "float32"))
    atomic_write_bytes(det_path, convert(model.keras_model, "int8", "uint8", False, calibration(),
                                         model.output_names, postprocess=pp))
    checks = inspect_tflite(det_path, "int8", "uint8", False, postprocess=True)
    assert checks["passed"] and checks["integer_only"], checks
    assert checks["postprocess_ops"] == {"TFLite_Detection_PostProcess": 1, "DEQUANTIZE": 2}, checks
    assert checks["float_ops"] == {}
    with load_runtime(raw_path) as raw_rt, load_runtime(det_path) as det_rt:
        _assert_same(pp.from_raw(raw_rt.predict(x)), det_rt.predict(x), box_atol=1e-5, score_atol=1e-5)
    # the exporter's int8 artifact passes the same checks
    art = _export(model, "tflite", "int8", tmp_path)
    assert art.checks["integer_only"] and "TFLite_Detection_PostProcess" in art.checks["postprocess_ops"]
    note = art.metadata["postprocess"]["note"]  # the report's note on the artifact
    assert "integer-only except the post-process, which computes in float" in note
    assert "TFLite_Detection_PostProcess x1" in note and "DEQUANTIZE x2" in note


def test_tflite_detector_outputs_follow_the_postprocess_contract(tmp_path):
    """An app reading outputs by index (TFLite Task Library's ObjectDetector, the Android and Raspberry
    Pi examples) finds boxes, classes, scores, count in that order, shaped [1,K,4], [1,K], [1,K], [1],
    and the boxes are (ymin, xmin, ymax, xmax)."""
    from ai_edge_litert.interpreter import Interpreter

    model = tiny_detector(AGNOSTIC)
    pp = model.make_task().postprocess(model.info)
    art = _export(model, "tflite", "fp32", tmp_path)
    it = Interpreter(model_path=str(art.path))
    it.allocate_tensors()
    outs = it.get_output_details()
    op = next(o for o in it._get_ops_details() if o["op_name"] == "TFLite_Detection_PostProcess")
    assert [int(o["index"]) for o in outs] == [int(i) for i in op["outputs"]]
    assert [tuple(o["shape"]) for o in outs] == [(1, 8, 4), (1, 8), (1, 8), (1,)]
    x = images(1)
    it.set_tensor(it.get_input_details()[0]["index"], x.astype(np.float32))
    it.invoke()
    boxes, classes, scores, count = (it.get_tensor(o["index"]) for o in outs)
    ref = pp.from_raw(model.predict(x))
    n = int(count[0])
    assert n == int(ref["num_detections"][0]) > 0
    np.testing.assert_allclose(boxes[0, :n], ref["detection_boxes"][0, :n], atol=1e-5)
    np.testing.assert_array_equal(classes[0, :n], ref["detection_classes"][0, :n])
    assert np.all(boxes[0, :n, 2] > boxes[0, :n, 0]) and np.all(boxes[0, :n, 3] > boxes[0, :n, 1])
    assert np.all(np.diff(scores[0, :n]) <= 0)


@pytest.mark.parametrize("nms", [AGNOSTIC, PER_CLASS], ids=["fast", "regular"])
def test_onnx_float_detections_equal_the_reference(tmp_path, nms):
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnxruntime")
    model = tiny_detector(nms)
    pp = model.make_task().postprocess(model.info)
    x = images()
    art = _export(model, "onnx", "fp32", tmp_path)
    assert art.checks["op_types"]["NonMaxSuppression"] == 1 and art.metadata["postprocess"]["variant"] == pp.nms.variant
    with load_runtime(art.path) as rt:  # one call for all images: the batch axis stays dynamic
        _assert_same(pp.from_raw(model.predict(x)), rt.predict(x))


def test_onnx_nms_pads_when_k_exceeds_the_candidates(tmp_path):
    pytest.importorskip("tf2onnx")
    model = tiny_detector({**AGNOSTIC, "max_detections": 40, "score_threshold": 0.0, "iou_threshold": 1.0})
    pp = model.make_task().postprocess(model.info)
    art = _export(model, "onnx", "fp32", tmp_path)  # 32 anchors, K = 40: every box kept, 8 rows of padding
    with load_runtime(art.path) as rt:
        out = rt.predict(images(2))
    assert out["detection_boxes"].shape == (2, 40, 4) and out["num_detections"].tolist() == [32, 32]
    ref = pp.from_raw(model.predict(images(2)))
    np.testing.assert_allclose(out["detection_scores"], ref["detection_scores"], atol=1e-6)


def test_onnx_int8_qdq_detections_equal_the_reference_on_its_raw_outputs(tmp_path):
    """The NMS is appended after QDQ quantization: the int8 artifact's detections are the numpy
    post-process of the same QDQ graph's raw outputs."""
    pytest.importorskip("tf2onnx")
    from edgecv.files import atomic_write_bytes
    from edgecv.formats.onnx.detection import append_postprocess
    from edgecv.formats.onnx.export import OnnxOptions, export_onnx_bytes

    model = tiny_detector(AGNOSTIC)
    pp = model.make_task().postprocess(model.info)
    x = images()
    raw, _ = export_onnx_bytes(model, "int8", OnnxOptions(), ExportContext("tiny", calibration()))
    atomic_write_bytes(tmp_path / "raw.onnx", raw)
    atomic_write_bytes(tmp_path / "det.onnx", append_postprocess(raw, pp))
    with load_runtime(tmp_path / "raw.onnx") as raw_rt, load_runtime(tmp_path / "det.onnx") as det_rt:
        _assert_same(pp.from_raw(raw_rt.predict(x)), det_rt.predict(x))
    art = _export(model, "onnx", "int8", tmp_path)
    assert art.checks["passed"] and art.checks["qdq"]["quantize_nodes"] > 0
    assert art.checks["op_types"]["NonMaxSuppression"] == 1


@pytest.mark.parametrize("nms", [AGNOSTIC, PER_CLASS], ids=["fast", "regular"])
def test_savedmodel_signature_answers_with_the_od_api_names(tmp_path, nms):
    model = tiny_detector(nms)
    pp = model.make_task().postprocess(model.info)
    x = images()
    art = _export(model, "savedmodel", "fp32", tmp_path)
    assert sorted(art.checks["outputs"]) == sorted(DETECTION_OUTPUTS)
    assert art.checks["outputs"]["detection_boxes"] == "float32[None,8,4]", art.checks["outputs"]
    assert art.checks["encoded_inputs"]  # the encoded-image signature goes through the same post-process
    with load_runtime(art.path) as rt:
        out = rt.predict(x)
    assert sorted(out) == sorted(DETECTION_OUTPUTS)
    _assert_same(pp.from_raw(model.predict(x)), out)


@pytest.mark.parametrize("nms", [AGNOSTIC, PER_CLASS], ids=["fast", "regular"])
def test_coreml_is_a_pipeline_ending_in_nms(tmp_path, nms):
    """Structure only on Linux (Core ML predicts on macOS): the package is a pipeline whose last
    model is Core ML's NonMaximumSuppression reading the detector's confidence [L, C] and
    coordinates [L, 4], with the build's thresholds, variant and labels, so Vision returns
    recognized-object observations."""
    pytest.importorskip("coremltools")
    import coremltools as ct

    from edgecv.formats.coreml.detection import inspect_pipeline

    model = tiny_detector(nms)
    pp = model.make_task().postprocess(model.info)
    art = _export(model, "coreml", "fp16", tmp_path)
    c = art.checks
    assert c["passed"] and c["pipeline_models"] == ["mlProgram", "nonMaximumSuppression"], c
    assert c["nms"]["per_class"] is nms["per_class"] and c["nms"]["labels"] == ["a", "b", "c"]
    assert c["nms"]["iou_threshold"] == nms["iou_threshold"] and c["nms"]["confidence_threshold"] == nms["score_threshold"]
    assert c["detector_outputs"] == {"confidence": [32, 3], "coordinates": [32, 4]}
    spec = ct.utils.load_spec(str(art.path))
    program_out = {o.name: o.type.multiArrayType.dataType for o in spec.pipeline.models[0].description.output}
    assert set(program_out.values()) == {ct.proto.FeatureTypes_pb2.ArrayFeatureType.FLOAT32}
    assert spec.description.input[0].type.WhichOneof("Type") == "imageType"
    # a wrong build is caught: other thresholds than the model's
    other = type(pp)(pp.anchors, pp.scales, type(pp.nms)(0.9, 0.9, 8, not nms["per_class"]))
    assert not inspect_pipeline(art.path, other, ["a", "b", "c"])["passed"]


def test_coreml_detector_decodes_and_the_runtime_reads_nms_rows_by_the_contract():
    """What the pipeline computes before the NMS (the converted function, run in TensorFlow) is the
    reference's decode in Vision's (x_center, y_center, width, height); the rows Core ML's NMS keeps,
    read by `to_contract`, give the reference's four outputs."""
    from edgecv.formats.coreml.detection import detector_function, to_contract
    from edgecv.metrics.nms import decode_boxes, greedy_nms

    model = tiny_detector(AGNOSTIC)
    pp = model.make_task().postprocess(model.info)
    x = images(3)
    raw = model.predict(x)
    ref = pp.from_raw(raw)
    fn = detector_function(model.keras_model, model.output_names, pp)
    for i in range(len(x)):
        out = {k: v.numpy() for k, v in fn(x[i:i + 1].astype(np.float32)).items()}
        np.testing.assert_allclose(out["raw_confidence"], raw["scores"][i], atol=1e-6)
        xc, yc, w, h = out["raw_coordinates"].T
        corners = np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], 1)
        np.testing.assert_allclose(corners, decode_boxes(raw["box_encodings"][i], pp.anchors, pp.scales), atol=1e-5)
        # Core ML's class-agnostic NMS keeps these rows, in any order
        keep = greedy_nms(corners, out["raw_confidence"].max(1), pp.nms.iou_threshold, pp.nms.score_threshold, 10 ** 6)
        shuffled = np.random.default_rng(i).permutation(keep)
        got = to_contract(out["raw_confidence"][shuffled], out["raw_coordinates"][shuffled], pp.nms.max_detections)
        one = {k: v[i:i + 1] for k, v in ref.items()}
        _assert_one(one, got)


def _assert_one(reference, candidate):
    d = compare_detections(reference, candidate)
    assert d["counts_equal"] and d["max_box_error"] < 1e-5 and d["max_score_error"] < 1e-6 and not d["class_mismatches"], d


def _tensorrt_bundle(tmp_path, nms, options=None):
    pytest.importorskip("tf2onnx")
    from edgecv.exporters import NotBuiltHere

    model = tiny_detector(nms)
    spec = ArtifactSpec(name="engine-fp16", format="tensorrt", precision="fp16", options=options or {})
    try:
        get_exporter("tensorrt")().export(model, spec, tmp_path, ExportContext("tiny", calibration()))
    except NotBuiltHere:
        pass  # no TensorRT/GPU here: the bundle is what the device builds from
    return tmp_path / "device-bundle-engine-fp16"


@pytest.mark.parametrize("nms", [AGNOSTIC, PER_CLASS], ids=["fast", "regular"])
def test_tensorrt_bundle_has_efficient_nms_and_records_the_tensorrt_it_needs(tmp_path, nms):
    import json

    import onnx
    from onnx import helper

    bundle = _tensorrt_bundle(tmp_path, nms, {"jetpack": ">=6"})
    data = json.loads((bundle / "bundle.json").read_text())
    e = data["engines"]["engine-fp16"]
    assert [o["name"] for o in data["outputs"]] == list(DETECTION_OUTPUTS)
    assert e["expects"]["tensorrt"] == (">=8.0" if nms["per_class"] else ">=8.6") and e["expects"]["jetpack"] == ">=6"
    assert "EfficientNMS_TRT" in " ".join(e["expects"]["reasons"]) and "JetPack >=6" in (bundle / "README.md").read_text()
    proto = onnx.load(str(bundle / e["onnx"]))
    (node,) = [n for n in proto.graph.node if n.op_type == "EfficientNMS_TRT"]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["class_agnostic"] == (0 if nms["per_class"] else 1) and attrs["max_output_boxes"] == 8
    assert attrs["background_class"] == -1 and attrs["box_coding"] == 0 and attrs["score_activation"] == 0
    assert abs(attrs["iou_threshold"] - nms["iou_threshold"]) < 1e-6
    assert abs(attrs["score_threshold"] - nms["score_threshold"]) < 1e-6
    assert [o.name for o in proto.graph.output] == list(DETECTION_OUTPUTS)
    assert any(n.op_type == "Cast" for n in proto.graph.node)  # fp16 graph: the decode reads its float32 outputs


def test_engine_build_and_validate_refuse_another_tensorrt_or_jetpack(tmp_path, monkeypatch):
    """Without a GPU: TensorRT stands in as a version number, the JetPack reader is replaced;
    `edgecv engine build` and `validate` refuse before building, exit 2, naming both versions."""
    from typer.testing import CliRunner

    import edgecv.formats.tensorrt.bundle as tb
    import edgecv.formats.tensorrt.versions as tv
    from edgecv.cli.main import app

    bundle = _tensorrt_bundle(tmp_path, AGNOSTIC, {"jetpack": ">=6"})

    class FakeTensorRT:
        __version__ = "8.5.2.2"

    built = []
    monkeypatch.setattr(tb, "tensorrt_status", lambda: (FakeTensorRT(), ""))
    monkeypatch.setattr(tb, "build_engine", lambda *a, **k: built.append(a))
    monkeypatch.setattr(tv, "jetpack_version", lambda: "5.1.2")
    for command in ("build", "validate"):
        res = CliRunner().invoke(app, ["engine", command, str(bundle)])
        assert res.exit_code == 2, res.output
        text = " ".join(res.output.split())
        assert "TensorRT 8.5.2.2 here, the bundle expects TensorRT >=8.6" in text, text
        assert "JetPack 5.1.2 here, the bundle expects JetPack >=6" in text and "class_agnostic" in text
    monkeypatch.setattr(tv, "jetpack_version", lambda: None)  # a desktop GPU
    FakeTensorRT.__version__ = "10.3.0"
    res = CliRunner().invoke(app, ["engine", "build", str(bundle)])
    assert res.exit_code == 2 and "not a Jetson" in " ".join(res.output.split())
    assert not built and not list(bundle.glob("*.engine"))
    # the right versions pass the check and reach the build
    monkeypatch.setattr(tv, "jetpack_version", lambda: "6.1")
    res = CliRunner().invoke(app, ["engine", "build", str(bundle), "--no-validate"])
    assert len(built) == 1, res.output


def test_version_requirements():
    from edgecv.formats.tensorrt.versions import parse_requirement, satisfies

    assert satisfies("10.3.0.30", ">=8.6") and not satisfies("8.5.2.2", ">=8.6")
    assert satisfies("10.7", "==10") and not satisfies("11.0", ">=10,<11") and satisfies("6.1", ">=6")
    with pytest.raises(ValueError, match="clauses like"):
        parse_requirement("8.6+")


@pytest.mark.parametrize("opset", [13, 18])
def test_onnx_nms_at_the_oldest_and_a_newer_opset(tmp_path, opset):
    """opset 13 (TensorRT 8.5's parser) and 18+ (ReduceMax takes its axes as an input)."""
    pytest.importorskip("tf2onnx")
    model = tiny_detector(AGNOSTIC)
    pp = model.make_task().postprocess(model.info)
    spec = ArtifactSpec(name="onnx", format="onnx", precision="fp32", options={"opset": opset})
    art = get_exporter("onnx")().export(model, spec, tmp_path, ExportContext("tiny", calibration()))
    assert art.checks["opset"] == opset
    with load_runtime(art.path) as rt:
        _assert_same(pp.from_raw(model.predict(images())), rt.predict(images()))
