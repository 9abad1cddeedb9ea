"""Optimization passes on the tiny model: pruning, QAT, accuracy-aware int8, backbone swap."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def ctx(tiny_trained, tiny_calibration, tiny_model):
    from edgecv.passes.base import make_context

    recipe, index, _ = tiny_trained
    return make_context(recipe, index, calibration=tiny_calibration[0], teacher=tiny_model)


def _run(name, model, ctx, **cfg):
    from edgecv.passes.base import parse_pass_config

    cls, config = parse_pass_config({"name": name, **cfg})
    return cls().run(model, config, ctx)


def _int8_tflite(task_model, calibration, tmp_path, name="m.tflite"):
    from edgecv.formats.tflite.export import convert
    from edgecv.formats.tflite.checks import inspect_tflite

    path = tmp_path / name
    path.write_bytes(convert(task_model.keras_model, "int8", "uint8", False, calibration,
                             output_names=task_model.output_names))
    return path, inspect_tflite(path, "int8", "uint8")


def _tflite_accuracy(path, images, labels):
    from edgecv.runtimes import load_runtime
    from edgecv.tasks import get_task

    task = get_task("classification")
    with load_runtime(path) as rt:
        outputs = task.select_outputs(rt.predict(images), {})
    return task.evaluate(outputs, labels, {})["accuracy"]


# ---- registry and plan checks -----------------------------------------------------------------

def test_every_registered_pass_imports_and_declares_itself():
    from edgecv.passes.base import PASS_MODULES, get_pass

    assert {"prune", "qat", "swap"} <= set(PASS_MODULES)
    for name in PASS_MODULES:
        cls = get_pass(name)
        assert cls.name == name and cls.description and cls.suits
        assert cls.needs <= {"calibration", "train_data", "teacher"}
        assert set(cls.precisions) <= {"fp32", "fp16", "int8"}


def test_plan_rejects_bad_pass_combinations():
    from edgecv.orchestrator.runner import check_plan
    from edgecv.config.target import Target
    from edgecv.errors import ConfigError

    def target(**artifact):
        return Target(name="t", description="d", artifacts=[{"name": "a", "format": "tflite", **artifact}])

    check_plan([target(precision="int8", passes=[{"name": "qat"}], options={"accuracy_aware": {"max_steps": 2}},
                       gates={"accuracy_drop_max": 1.0})])
    with pytest.raises(ConfigError, match="qat suits precision int8"):
        check_plan([target(precision="fp32", passes=[{"name": "qat"}])])
    with pytest.raises(ConfigError, match="unknown key|Extra inputs"):
        check_plan([target(precision="fp32", passes=[{"name": "prune", "sparsty": 0.5}])])
    with pytest.raises(ConfigError, match="accuracy_aware needs precision int8"):
        check_plan([target(precision="fp32", options={"accuracy_aware": {}}, gates={"accuracy_drop_max": 1})])
    with pytest.raises(ConfigError, match="no quality gate"):
        check_plan([target(precision="int8", options={"accuracy_aware": {}})])
    with pytest.raises(ConfigError, match=r"adaround is int8 weight preparation .* options.ptq.adaround"):
        check_plan([target(precision="int8", passes=[{"name": "adaround"}])])


def test_each_format_declares_its_int8_passes():
    from edgecv.config.target import ArtifactSpec
    from edgecv.exporters import get_exporter

    def names(fmt, precision="int8", **options):
        spec = ArtifactSpec(name="a", format=fmt, precision=precision, options=options)
        return [(p.name, cfg.model_dump()) for p, cfg in get_exporter(fmt).int8_passes(spec)]

    assert names("tflite") == [("adaround", {"name": "adaround", "iterations": 1000}),
                               ("bias_correction", {"name": "bias_correction"})]
    assert names("tflite", ptq={"adaround": False}) == [("bias_correction", {"name": "bias_correction"})]
    assert names("onnx") == names("tensorrt") == [("bias_correction", {"name": "bias_correction"})]
    assert names("onnx", adaround=True, adaround_iterations=5)[0] == ("adaround", {"name": "adaround", "iterations": 5})
    assert names("tflite", "fp32") == names("coreml", "fp16") == []


# ---- pruning ------------------------------------------------------------------------------------

@pytest.mark.parametrize("schedule", ["polynomial", "constant"])
def test_prune_reaches_target_sparsity_and_keeps_accuracy(tiny_model, ctx, tiny_val, schedule):
    from edgecv.passes.prune import kernel_sparsity

    out = _run("prune", tiny_model, ctx, sparsity=0.6, schedule=schedule, epochs=3, learning_rate=1e-3)
    rep = ctx.report
    pruned = {row["layer"] for row in rep["layers"]}
    assert pruned == {"tiny_conv0", "tiny_conv1", "tiny_conv2", "logits"}
    for name in pruned:  # measured on the returned model, not taken from the report
        assert kernel_sparsity(out.keras_model.get_layer(name).kernel.numpy()) == pytest.approx(0.6, abs=0.02)
    assert rep["achieved_sparsity"] == pytest.approx(0.6, abs=0.02)
    assert rep["weights_gzip_bytes_after"] < rep["weights_gzip_bytes_before"]
    # wrappers stripped: plain Keras layers, same names, and the input model is untouched
    assert [l.name for l in out.keras_model.layers] == [l.name for l in tiny_model.keras_model.layers]
    assert kernel_sparsity(tiny_model.keras_model.get_layer("tiny_conv1").kernel.numpy()) < 0.05
    images, labels = tiny_val
    probs = out.keras_model.predict(images.astype("float32"), verbose=0)
    assert (probs.argmax(1) == labels).mean() >= 0.8


def test_prune_2_of_4_pattern(tiny_model, ctx):
    from edgecv.passes.prune import is_2_of_4

    out = _run("prune", tiny_model, ctx, pattern="2:4", epochs=1)
    rep = ctx.report
    # the RGB stem has 3 input channels: left dense, with the reason
    assert {s["layer"] for s in rep["skipped"]} >= {"tiny_conv0"}
    assert rep["all_2_of_4"]
    for row in rep["layers"]:
        assert is_2_of_4(out.keras_model.get_layer(row["layer"]).kernel.numpy())
    assert not is_2_of_4(tiny_model.keras_model.get_layer("tiny_conv1").kernel.numpy())


def test_is_2_of_4_detects_a_violation():
    from edgecv.passes.prune import is_2_of_4

    k = np.ones((1, 1, 8, 2), np.float32)
    k[0, 0, [0, 1, 4, 5], :] = 0
    assert is_2_of_4(k)
    k[0, 0, 5, 1] = 0.3
    assert not is_2_of_4(k)


# ---- quantization-aware training ----------------------------------------------------------------

def test_qat_model_converts_to_integer_only_int8(tiny_model, ctx, tiny_val, tiny_calibration, tmp_path):
    from edgecv.models.build import TaskModel

    out = _run("qat", tiny_model, ctx, epochs=2, learning_rate=1e-4)
    kinds = {type(l).__name__ for l in out.keras_model.layers}
    assert {"QuantizeLayer", "QuantizeWrapperV2"} <= kinds
    assert ctx.report["quantized_layers"] == len(tiny_model.keras_model.layers) - 1  # all but the input
    # ranges calibrated before training: the fake-quantized model starts near the float one
    assert ctx.report["ranges_calibrated"] >= 8
    assert ctx.report["val_accuracy_fake_quant_before"] >= ctx.report["val_accuracy_float"] - 10
    # saved and loaded through the cache as the runner does
    out.save(tmp_path / "qat")
    loaded = TaskModel.load(tmp_path / "qat")
    images, labels = tiny_val
    np.testing.assert_allclose(loaded.keras_model.predict(images[:8].astype("float32"), verbose=0),
                               out.keras_model.predict(images[:8].astype("float32"), verbose=0), atol=1e-6)
    path, checks = _int8_tflite(loaded, tiny_calibration[0], tmp_path)
    assert checks["passed"], checks["message"]
    assert checks["integer_only"] and not checks["float_ops"]
    assert checks["input_dtype"] == "uint8" and checks["input_quantization"] == [1.0, 0]
    assert _tflite_accuracy(path, images, labels) >= 80


def test_qat_quantizes_depthwise_kernels_per_channel(tmp_path):
    """Folded batch norm leaves depthwise channels at very different scales: one scale for all (what
    tfmot does) wipes out the small ones; per channel (what TFLite stores) keeps them."""
    from edgecv._keras import keras
    from edgecv.formats.tflite.export import convert
    from edgecv.passes.qat import calibrate_ranges, quantize_model

    inp = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, -1, name="normalize")(inp)
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="c0")(x)
    x = keras.layers.BatchNormalization(name="bn0")(x)
    x = keras.layers.ReLU(6.0, name="r0")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(x)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(6.0, name="r1")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(4, name="logits")(x)
    model = keras.Model(inp, keras.layers.Activation("softmax", name="probabilities")(x))
    scales = np.array([1e-3, 3e-3, 0.01, 0.1, 0.3, 1, 3, 10], np.float32)
    model.get_layer("dw").set_weights([model.get_layer("dw").get_weights()[0] * scales[None, None, :, None]])
    images = np.random.default_rng(0).uniform(0, 255, (32, 16, 16, 3)).astype(np.float32)

    def batches():
        for i in range(len(images)):
            yield images[i:i + 1].astype(np.uint8)

    qmodel = quantize_model(model)
    calibrate_ranges(qmodel, model, batches)
    probe_f = keras.Model(model.input, model.get_layer("dw").output)
    probe_q = keras.Model(qmodel.input, qmodel.get_layer("quant_dw").output)
    f, qv = probe_f(images).numpy(), probe_q(images).numpy()
    per_channel_err = np.abs(f - qv).mean(axis=(0, 1, 2)) / np.abs(f).mean(axis=(0, 1, 2))
    assert per_channel_err.max() < 0.05, per_channel_err  # the 1e-3 channel survives

    path = tmp_path / "dw.tflite"
    path.write_bytes(convert(qmodel, "int8", "uint8", False, batches))
    from ai_edge_litert.interpreter import Interpreter

    dw = [t for t in Interpreter(model_path=str(path)).get_tensor_details()
          if t["dtype"] == np.int8 and list(t["shape"]) == [1, 3, 3, 8]]  # the depthwise filter
    assert dw and len(dw[0]["quantization_parameters"]["scales"]) == 8
    s = dw[0]["quantization_parameters"]["scales"]
    assert s.max() / s.min() > 1000  # one scale per channel, following the channels' magnitudes


def test_qat_rejects_layers_tfmot_cannot_quantize(ctx):
    from edgecv._keras import keras
    from edgecv.errors import ConfigError
    from edgecv.passes.qat import quantize_model

    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="c")(inp)
    x = keras.layers.LayerNormalization(name="ln")(x)
    with pytest.raises(ConfigError, match="ln"):
        quantize_model(keras.Model(inp, x))


# ---- accuracy-aware int8 ----------------------------------------------------------------------

class _Recorder:
    """A fake converter/evaluator pair for the loop: a candidate passes once `needed` is float."""

    def __init__(self, needed):
        self.needed, self.built, self.evaluated = set(needed), [], 0

    def build(self, float_layers):
        self.built.append(list(float_layers))
        return ",".join(float_layers).encode() or b"int8"

    def evaluate(self, model):
        self.evaluated += 1
        floats = set(model.decode().split(",")) if model != b"int8" else set()
        return {"passed": self.needed <= floats, "accuracy": 90.0 + len(floats)}


def test_accuracy_aware_stops_as_soon_as_the_gate_passes():
    from edgecv.formats.accuracy_aware import search

    rec = _Recorder({"a", "b"})
    res = search(["a", "b", "c", "d"], rec.build, rec.evaluate, max_steps=8)
    assert res.passed and not res.gave_up
    assert res.float_layers == ["a", "b"]
    assert rec.built == [[], ["a"], ["a", "b"]]  # nothing converted after the passing candidate
    assert [s.passed for s in res.steps] == [False, False, True]
    assert res.final == b"a,b"


def test_accuracy_aware_keeps_all_int8_when_it_already_passes():
    from edgecv.formats.accuracy_aware import search

    rec = _Recorder(set())
    res = search(["a", "b"], rec.build, rec.evaluate, max_steps=8)
    assert res.passed and res.float_layers == [] and rec.built == [[]]


def test_accuracy_aware_gives_up_after_its_budget():
    from edgecv.formats.accuracy_aware import search

    rec = _Recorder({"z"})  # never reached
    res = search(["a", "b", "c", "d", "e"], rec.build, rec.evaluate, max_steps=3, layers_per_step=1)
    assert res.gave_up and not res.passed
    assert len(rec.built) == 1 + 3 and rec.evaluated == 4
    assert res.float_layers == ["a", "b", "c"] and res.final == b"a,b,c"
    res2 = search(["a", "b", "c", "d", "e"], _Recorder({"z"}).build, _Recorder({"z"}).evaluate, max_steps=2,
                  layers_per_step=2)
    assert res2.float_layers == ["a", "b", "c", "d"]


def test_accuracy_aware_skips_layers_that_fail_to_convert():
    from edgecv.errors import ConversionError
    from edgecv.formats.accuracy_aware import search

    rec = _Recorder({"c"})

    def build(float_layers):
        if "b" in float_layers:
            raise ConversionError("cannot keep b float")
        return rec.build(float_layers)

    res = search(["a", "b", "c"], build, rec.evaluate, max_steps=2)  # a failed build costs no step
    assert res.passed and res.float_layers == ["a", "c"]
    assert res.steps[2].error and res.steps[2].step is None and res.steps[3].step == 2


def test_diagnose_ranks_layers_and_keeps_denylisted_ones_float(tiny_model, tiny_calibration, tmp_path):
    from edgecv.formats.tflite.export import convert
    from edgecv.formats.tflite.diagnose import diagnose
    from edgecv.formats.tflite.checks import inspect_tflite

    diag = diagnose(tiny_model.keras_model, tiny_calibration[0], debug_samples=8)
    errs = [e.rmse_over_scale for e in diag.layers]
    assert errs == sorted(errs, reverse=True) and len(errs) >= 8
    conv_rows = [e for e in diag.layers if e.op == "CONV_2D"]
    assert {"tiny_conv0", "tiny_conv1", "tiny_conv2"} <= {n for e in conv_rows for n in e.layers}

    (tmp_path / "all.tflite").write_bytes(diag.quantized([]))
    (tmp_path / "ref.tflite").write_bytes(convert(tiny_model.keras_model, "int8", "uint8", False, tiny_calibration[0]))
    full, ref = inspect_tflite(tmp_path / "all.tflite", "int8", "uint8"), inspect_tflite(tmp_path / "ref.tflite", "int8", "uint8")
    assert full["passed"] and full["integer_only"] and full["op_counts"] == ref["op_counts"]

    (tmp_path / "one.tflite").write_bytes(diag.quantized([conv_rows[0].tensor]))
    one = inspect_tflite(tmp_path / "one.tflite", "int8", "uint8", allow_float_ops=True)
    assert one["float_ops"].get("CONV_2D") == 1 and one["input_quantization"] == [1.0, 0]


def test_tflite_exporter_accuracy_aware_option(tiny_model, tiny_calibration, tmp_path):
    """The real converter in the loop: the evaluate callback asks for two float convolutions,
    read from each candidate file, so the loop must stop at the step that makes the second."""
    from edgecv.config.target import ArtifactSpec
    from edgecv.exporters import ExportContext, get_exporter
    from edgecv.formats.tflite.checks import inspect_tflite

    seen = []

    def evaluate(path, latency=False):
        floats = inspect_tflite(path, "int8", "uint8", allow_float_ops=True)["float_ops"]
        seen.append(floats.get("CONV_2D", 0))
        return {"passed": floats.get("CONV_2D", 0) >= 2, "accuracy": 100.0, "latency_p50_ms": 1.0 if latency else None}

    spec = ArtifactSpec(name="int8", format="tflite", precision="int8",
                        options={"accuracy_aware": {"max_steps": 20, "debug_samples": 8}})
    ctx = ExportContext("tiny", tiny_calibration[0], evaluate=evaluate)
    art = get_exporter("tflite")().export(tiny_model, spec, tmp_path, ctx)
    rep = art.metadata["accuracy_aware"]
    assert rep["passed"] and not rep["gave_up"]
    assert seen[-3] == 2 and seen[:-3][-1] < 2  # stopped at the first passing step (+2 latency runs)
    assert art.checks["float_ops"].get("CONV_2D") == 2 and art.checks["passed"]
    assert sum("CONV_2D" == rep_row["op"] for rep_row in rep["ranking"] if rep_row["tensor"] in rep["float_layers"]) == 2
    assert rep["cost"]["size_bytes_final"] == art.size_bytes
    assert not list(tmp_path.glob(".*candidate*"))


def test_onnx_exporter_accuracy_aware_option(tiny_model, tiny_calibration, tmp_path):
    """QDQ ONNX: each step leaves one more Keras layer out of quantization; the loop stops at the
    first candidate the (here scripted) gate accepts."""
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnxruntime")
    from edgecv.config.target import ArtifactSpec
    from edgecv.exporters import ExportContext, get_exporter
    from edgecv.formats.onnx.export import inspect_onnx

    int8_weighted = []

    def evaluate(path, latency=False):
        int8_weighted.append(inspect_onnx(path.read_bytes(), "int8")["qdq"]["weight_dequantize_nodes"])
        return {"passed": len(int8_weighted) >= 3, "accuracy": 100.0, "latency_p50_ms": 1.0 if latency else None}

    spec = ArtifactSpec(name="int8", format="onnx", precision="int8",
                        options={"accuracy_aware": {"max_steps": 5, "debug_samples": 8}, "placement": "all"})
    art = get_exporter("onnx")().export(tiny_model, spec, tmp_path,
                                        ExportContext("tiny", tiny_calibration[0], evaluate=evaluate))
    rep = art.metadata["accuracy_aware"]
    assert rep["passed"] and rep["steps_used"] == 2 and len(rep["float_layers_keras"]) == 2
    first, last = int8_weighted[0], int8_weighted[2]
    assert last < first  # weights really left float in the file that was evaluated
    assert art.checks["passed"] and art.metadata["kept_float"]
    assert not list(tmp_path.glob(".*candidate*"))


def test_plan_accepts_accuracy_aware_onnx_but_not_tensorrt():
    pytest.importorskip("tf2onnx")
    from edgecv.orchestrator.runner import check_plan
    from edgecv.config.target import Target
    from edgecv.errors import ConfigError

    def target(fmt):
        return Target(name="t", description="d", gates={"accuracy_drop_max": 1.0},
                      artifacts=[{"name": "a", "format": fmt, "precision": "int8",
                                  "options": {"accuracy_aware": {"max_steps": 2}}}])

    check_plan([target("onnx")])
    with pytest.raises(ConfigError, match="accuracy_aware"):
        check_plan([target("tensorrt")])


# ---- backbone swap by distillation --------------------------------------------------------------

def test_distillation_loss_matches_its_definition():
    from edgecv._keras import tf
    from edgecv.tasks import get_task

    distillation_loss = get_task("classification").distillation_loss

    y = np.array([[0, 1.0, 0]], np.float32)
    s, t = np.array([[0.5, 1.0, -1.0]], np.float32), np.array([[2.0, 0.0, 1.0]], np.float32)
    total, hard, soft = [float(v) for v in distillation_loss(tf.constant(y), tf.constant(s), tf.constant(t), 2.0, 0.25)]

    def softmax(z):
        e = np.exp(z - z.max())
        return e / e.sum()

    ps, pt = softmax(s[0] / 2), softmax(t[0] / 2)
    assert hard == pytest.approx(-np.log(softmax(s[0])[1]), rel=1e-5)
    assert soft == pytest.approx(4 * (pt * np.log(pt / ps)).sum(), rel=1e-4)
    assert total == pytest.approx(0.75 * hard + 0.25 * soft, rel=1e-5)
    _, _, same = distillation_loss(tf.constant(y), tf.constant(t), tf.constant(t), 2.0, 0.5)
    assert float(same) == pytest.approx(0.0, abs=1e-5)


def test_swap_distills_a_smaller_student_at_its_own_input_size(tiny_model, ctx):
    # the teacher online on every batch, plain KD, flat rate: the pass as it was before cached views
    # (tests/test_distill.py covers the defaults)
    out = _run("swap", tiny_model, ctx, backbone="TinyCNN", alpha=0.5, input_size=24, weights="none",
               warmup_epochs=0, epochs=5, learning_rate=3e-3, temperature=2.0, augment=False,
               teacher_views=0, feature_weight=0.0, schedule="constant")
    rep = ctx.report
    assert out.input_size == (24, 24) and out.keras_model.input_shape[1:3] == (24, 24)
    assert out.backbone == "TinyCNN" and out.info == tiny_model.info
    assert rep["student"]["params"] < rep["teacher"]["params"]
    losses = [row["loss"] for row in rep["history"]]
    assert len(losses) == 5 and losses[-1] < 0.5 * losses[0], losses
    assert rep["history"][-1]["distill_loss"] < rep["history"][0]["distill_loss"]
    assert rep["student"]["val_accuracy"] >= 80


def test_a_pass_gives_the_same_model_whatever_ran_before_it(tiny_model, ctx):
    # swap makes a student with new weights: built alone or after other work in the same process
    # (another target's training moves the global random state), a target must get the same model
    import tensorflow as tf

    from edgecv.passes.base import parse_pass_config, run_pass

    cls, cfg = parse_pass_config({"name": "swap", "backbone": "TinyCNN", "alpha": 0.5, "input_size": 24,
                                  "weights": "none", "warmup_epochs": 0, "epochs": 1, "augment": False,
                                  "teacher_views": 0, "feature_weight": 0.0})
    first = run_pass(cls, tiny_model, cfg, ctx)
    tf.random.uniform((7,)), np.random.rand(3), tf.keras.utils.set_random_seed(1234)  # other work
    second = run_pass(cls, tiny_model, cfg, ctx)
    a, b = first.keras_model.get_weights(), second.keras_model.get_weights()
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_swap_config_is_checked_while_planning():
    from edgecv.passes.base import parse_pass_config

    with pytest.raises(ValueError, match="unknown backbone"):
        parse_pass_config({"name": "swap", "backbone": "MobileNetV9"})
    cls, cfg = parse_pass_config({"name": "swap", "backbone": "mobilenet", "alpha": 0.25, "input_size": [128, 128]})
    assert cfg.backbone == "MobileNet" and cfg.size((224, 224)) == (128, 128)


def test_swap_rejects_another_aspect_ratio(tiny_model, ctx):
    from edgecv.errors import ConfigError

    with pytest.raises(ConfigError, match="aspect ratio"):
        _run("swap", tiny_model, ctx, backbone="TinyCNN", input_size=[24, 32], epochs=1)


# ---- through the build ------------------------------------------------------------------------

def test_build_runs_every_pass_and_validates_the_student_at_its_size(tiny_recipe_path, tmp_path):
    import json

    import yaml
    from rich.console import Console

    from edgecv.orchestrator.runner import run_build

    target = {
        "description": "passes on the tiny model",
        "artifacts": [
            {"name": "pruned", "format": "tflite", "precision": "int8",
             "passes": [{"name": "prune", "sparsity": 0.5, "epochs": 1}]},
            {"name": "qat", "format": "tflite", "precision": "int8", "passes": [{"name": "qat", "epochs": 1}]},
            {"name": "student", "format": "tflite", "precision": "int8",
             "passes": [{"name": "swap", "backbone": "TinyCNN", "alpha": 0.5, "input_size": 24,
                         "warmup_epochs": 0, "epochs": 2, "learning_rate": 3e-3}]},
            {"name": "tight", "format": "tflite", "precision": "int8",
             "options": {"accuracy_aware": {"max_steps": 2, "debug_samples": 4}},
             "gates": {"top1_agreement_min": 1.0}},
        ],
        "gates": {"accuracy_drop_max": 100.0},
    }
    tpath = tmp_path / "passes-target.yaml"
    tpath.write_text(yaml.safe_dump(target))
    result = run_build(tiny_recipe_path, [str(tpath)], tmp_path / "out", console=Console(quiet=True), gates=False)
    report = json.loads((tmp_path / "out" / "passes-target" / "report.json").read_text())
    arts = {a["name"]: a for a in report["artifacts"]}
    assert all(a["status"] == "ok" for a in arts.values()), {n: a.get("error") for n, a in arts.items()}
    assert result.exit_code == 0

    pruned = arts["pruned"]["passes"][0]
    assert pruned["pass"] == "prune" and pruned["achieved_sparsity"] == pytest.approx(0.5, abs=0.02)
    assert arts["pruned"]["gzip_bytes"] < arts["pruned"]["size_bytes"]
    assert arts["qat"]["checks"]["integer_only"]

    student = arts["student"]
    assert student["input_size"] == [24, 24] and arts["qat"]["input_size"] == [32, 32]
    pre = json.loads((tmp_path / "out" / "passes-target" / "preprocessing.json").read_text())
    assert pre["input"]["height"] == 32 and pre["artifact_input_sizes"] == {"student": {"height": 24, "width": 24}}
    assert student["metrics"]["count"] == report["data"]["val_count"]
    assert student["agreement"] is not None  # compared with the reference's outputs on the same images

    aware = arts["tight"]["artifact_metadata"]["accuracy_aware"]
    evaluated = [s for s in aware["steps"] if s["step"] is not None]
    assert aware["passed"] == bool(evaluated[-1]["passed"])
    assert all(not s["passed"] for s in evaluated[:-1])  # stopped at the first pass
    if aware["passed"]:
        assert arts["tight"]["agreement"]["top1_agreement"] == 1.0
    else:
        assert aware["gave_up"] and aware["steps_used"] == 2


def test_cli_lists_the_passes_with_their_declarations():
    from typer.testing import CliRunner

    from edgecv.cli.main import app

    res = CliRunner().invoke(app, ["passes", "--verbose"])
    assert res.exit_code == 0, res.output
    for word in ("prune", "qat", "swap", "adaround", "bias_correction", "iterations=1000", "train_data", "teacher",
                 "sparsity=0.5", "accuracy_aware"):
        assert word in res.output
