"""Core ML exporter: an ML Program (.mlpackage) an iOS app feeds camera frames to directly.

- Input: an ImageType (RGB, the recipe's size). Where the backbone's normalization is exactly one
  scale for all channels plus a per-channel bias, possibly after an RGB->BGR flip (tf, caffe), the
  model's `normalize` layer is removed and Core ML applies it as the ImageType's scale/bias/colour
  layout. Otherwise (torch: one std per channel, which the ImageType's single scale cannot say)
  the layer stays in the model and the ImageType is the identity. Which was done is recorded.
- Outputs: a classifier (`classLabel`, `classLabel_probs`) carrying the labels where the task
  offers Core ML classifier labels (`Task.coreml_classifier_labels`), otherwise one multi-array
  output per task output, named as the task names them (`Task.output_spec`).
- Precision: the artifact's precision is the compute precision (fp16 default, fp32 on request).
- Compression (options.compression): int8 linear per-channel weights, k-means palettization to 6
  or 4 bits, magnitude pruning. All decompress to float at load time: compute precision is
  unchanged, which is why an int8-weights artifact is precision fp16 and compression int8.

Conversion path: coremltools' TensorFlow 2 frontend on a concrete function of the tf_keras model
(`[1, H, W, 3]` float32 named `image`, inference mode). Converting the Keras model object directly
also works on TF 2.21 (coremltools traces it the same way), but the concrete function lets us name
the input, fix the batch to the one frame an app sends, and convert the model without its
`normalize` layer; the SavedModel path adds a disk round trip for nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, Optional

import numpy as np
from pydantic import Field

from edgecv.files import atomic_path
from edgecv.config.recipe import Strict
from edgecv.errors import ConfigError, ConversionError
from edgecv.exporters.base import Artifact, ExportContext, Exporter, parse_options
from edgecv.formats.coreml.checks import (
    CLASSIFIER_OUTPUTS,
    OUTPUTS_KEY,
    PREPROCESSING_KEY,
    Expected,
    ImagePreprocessing,
    compression_error,
    inspect_mlpackage,
    load_package,
    main_function,
    preprocessing_parity,
)
from edgecv.models.signature import serving_function
from edgecv.formats.coreml.detection import (CONFIDENCE, COORDINATES, class_names_of, detector_function, inspect_pipeline,
                                             nms_model)

INPUT_NAME = "image"
COMPRESSIONS = ("none", "int8", "palettize6", "palettize4", "prune")
_FLIP = np.eye(3)[::-1]


class CoreMLOptions(Strict):
    """`options:` of a coreml artifact in a target file."""

    minimum_deployment_target: str = Field("iOS16", description="iOS15, iOS16, iOS17, iOS18 ...")
    compression: Literal[COMPRESSIONS] = "none"
    sparsity: float = Field(0.5, gt=0, lt=1, description="prune: fraction of each pruned tensor set to zero")
    weight_threshold: int = Field(2048, ge=0, description="tensors with at most this many elements stay float")
    author: str = "edgecv"
    license: str = Field("", description="licence of the model weights, shown in Xcode")
    description: Optional[str] = None
    version: Optional[str] = None


def coreml_options(raw: dict) -> CoreMLOptions:
    """The options model, plus the checks that need coremltools (deployment target, compression)."""
    opts = parse_options(raw, CoreMLOptions, "coreml artifact")
    import coremltools as ct

    if opts.minimum_deployment_target not in ct.target.__members__:
        raise ConfigError(f"coreml options.minimum_deployment_target {opts.minimum_deployment_target!r}: "
                          f"use one of {', '.join(ct.target.__members__)}")
    if ct.target[opts.minimum_deployment_target].value < ct.target.iOS15.value:
        raise ConfigError("coreml: an ML Program needs minimum_deployment_target iOS15 or later")
    if opts.compression != "none" and ct.target[opts.minimum_deployment_target].value < ct.target.iOS16.value:
        raise ConfigError(f"coreml compression {opts.compression} stores weights in constexpr ops that Core ML "
                          f"reads from iOS16 on; minimum_deployment_target is {opts.minimum_deployment_target}. "
                          "Use compression: none or iOS16+")
    return opts


def fold_normalization(task_model) -> ImagePreprocessing:
    """The ImageType that replaces the model's `normalize` layer, where it can do so exactly."""
    norm = task_model.normalization
    if not _has_normalize_layer(task_model.keras_model):
        return ImagePreprocessing(folded=False, normalization=norm.mode,
                                  note="no `normalize` layer on the model's input (the backbone normalizes inside, "
                                       "or a pass wrapped it): the ImageType passes pixels unchanged")
    m, b = np.asarray(norm.matrix, np.float64), np.asarray(norm.bias, np.float64)
    for layout, perm in (("RGB", np.eye(3)), ("BGR", _FLIP)):
        # m == s * perm exactly: Core ML reorders channels (layout), then scale, then bias
        s = float(m[0] @ perm[0])
        if s != 0.0 and np.array_equal(m, s * perm):
            return ImagePreprocessing(layout, s, [float(x) for x in b], folded=True, normalization=norm.mode,
                                      note=f"normalize layer folded into the ImageType ({layout}, scale, bias)")
    return ImagePreprocessing(folded=False, normalization=norm.mode,
                              note=f"{norm.mode} normalization has a per-channel scale or mixes channels, which the "
                                   "ImageType's one scale cannot express: the normalize layer stays in the model")


def _has_normalize_layer(keras_model) -> bool:
    from edgecv.models.build import NORMALIZE_LAYER

    try:
        layer = keras_model.get_layer(NORMALIZE_LAYER)
    except ValueError:
        return False
    # foldable only when it is the very first op on the model's input
    return layer.input is keras_model.inputs[0] or getattr(layer.input, "name", None) == keras_model.inputs[0].name


def network_without_normalize(keras_model):
    """The same layers (shared weights) starting after `normalize`."""
    from edgecv._keras import keras
    from edgecv.models.build import NORMALIZE_LAYER

    return keras.Model(keras_model.get_layer(NORMALIZE_LAYER).output, keras_model.outputs,
                       name=f"{keras_model.name}_folded")


def without_uint8_casts(keras_model):
    """Core ML's cast has no uint8 (coremltools: "Cast: Provided destination type uint8 not
    supported"): layers that cast to it (`cast_dtype`, e.g. a segmentation class map) are rebuilt
    casting to int32, the nearest integer type an ML Program output takes. Same weights."""
    from edgecv._keras import keras

    if not any(getattr(layer, "cast_dtype", None) == "uint8" for layer in keras_model.layers):
        return keras_model

    def clone(layer):
        config = layer.get_config()
        if getattr(layer, "cast_dtype", None) == "uint8":
            config["cast_dtype"] = "int32"
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(keras_model, clone_function=clone)
    copy.set_weights(keras_model.get_weights())
    return copy


def convert(task_model, precision: str, opts: CoreMLOptions, pre: ImagePreprocessing, task, postprocess=None):
    """The uncompressed ML Program (a coremltools MLModel in memory): a classifier where the task
    gives classifier labels, else multi-array outputs under the task's output names; with a
    detection `postprocess`, the decoding detector of the NMS pipeline (float32 outputs
    raw_confidence, raw_coordinates: edgecv.formats.coreml.detection)."""
    import coremltools as ct


    keras_model = network_without_normalize(task_model.keras_model) if pre.folded else task_model.keras_model
    keras_model = without_uint8_casts(keras_model)
    h, w = task_model.input_size
    outputs = None
    if postprocess is not None:
        fn = detector_function(keras_model, task_model.output_names, postprocess).get_concrete_function()
        labels = None  # the NMS model carries the labels: Vision's object observations
        outputs = [ct.TensorType(name=t.name.split(":")[0], dtype=np.float32) for t in fn.outputs]
    else:
        fn = serving_function(keras_model, task_model.output_names, batch=1).get_concrete_function()
        labels = task.coreml_classifier_labels(task_model.info)
    layout = ct.colorlayout.BGR if pre.color_layout == "BGR" else ct.colorlayout.RGB
    try:
        mlmodel = ct.convert(
            [fn], source="tensorflow", convert_to="mlprogram",
            inputs=[ct.ImageType(name=INPUT_NAME, shape=(1, h, w, 3), scale=pre.scale, bias=list(pre.bias),
                                 color_layout=layout, channel_first=False)],
            outputs=outputs,
            classifier_config=ct.ClassifierConfig(labels) if labels is not None else None,
            compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
            minimum_deployment_target=ct.target[opts.minimum_deployment_target],
            skip_model_load=True,  # compiling needs macOS; the runtime loads it there
        )
    except Exception as e:
        raise ConversionError(f"coremltools rejected the model: {type(e).__name__}: {str(e).strip()[:2000]}") from None
    if labels is None:  # the converter names outputs after the graph's tensors (Identity, Identity_1 ...)
        mlmodel = rename_outputs(mlmodel, {t.name.split(":")[0]: name for name, t in fn.structured_outputs.items()})
    return mlmodel


def rename_outputs(mlmodel, names: dict):
    """The same ML Program with outputs renamed old -> new (spec and program)."""
    import coremltools as ct

    spec = mlmodel.get_spec()
    for old, new in names.items():
        if old != new:
            ct.utils.rename_feature(spec, old, new, rename_inputs=False)
    return ct.models.MLModel(spec, weights_dir=mlmodel.weights_dir, skip_model_load=True)


def compress(mlmodel, opts: CoreMLOptions):
    if opts.compression == "none":
        return mlmodel
    import coremltools.optimize.coreml as cto

    thr = opts.weight_threshold
    if opts.compression == "int8":
        op = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel",
                                         weight_threshold=thr)
        fn = cto.linear_quantize_weights
    elif opts.compression.startswith("palettize"):
        op = cto.OpPalettizerConfig(mode="kmeans", nbits=int(opts.compression[len("palettize"):]),
                                    granularity="per_tensor", weight_threshold=thr)
        fn = cto.palettize_weights
    else:
        op = cto.OpMagnitudePrunerConfig(target_sparsity=opts.sparsity, weight_threshold=thr)
        fn = cto.prune_weights
    try:
        return fn(mlmodel, cto.OptimizationConfig(global_config=op))
    except Exception as e:
        raise ConversionError(f"coremltools could not apply {opts.compression}: {type(e).__name__}: {e}") from None


def describe(mlmodel, task_model, task, opts: CoreMLOptions, pre: ImagePreprocessing, precision: str,
             ctx: ExportContext) -> None:
    """Model metadata Xcode shows, plus what edgecv needs to check the package later."""
    h, w = task_model.input_size
    outputs = task.output_spec(task_model.info)
    classifier = task.coreml_classifier_labels(task_model.info) is not None
    mlmodel.author = opts.author
    mlmodel.license = opts.license
    mlmodel.version = opts.version or str(ctx.metadata.get("edgecv_version", ""))
    mlmodel.short_description = opts.description or (
        f"{ctx.model_name}: {task_model.backbone} {task.name} model "
        f"({', '.join(f'{o.name} {list(o.shape)}' for o in outputs)}), {h}x{w} RGB input, built by edgecv")
    mlmodel.input_description[INPUT_NAME] = (
        f"RGB image {w}x{h} (resized by the app as the recipe does); pixel values 0-255, "
        + ("normalization applied by Core ML" if pre.folded else "normalization inside the model"))
    if classifier:
        mlmodel.output_description[CLASSIFIER_OUTPUTS[0]] = "most likely class"
        mlmodel.output_description[CLASSIFIER_OUTPUTS[1]] = f"{outputs[0].name}: the score of each class"
    else:
        for o in outputs:
            mlmodel.output_description[o.name] = o.meaning or f"{o.dtype} {list(o.shape)}"
    meta = mlmodel.user_defined_metadata
    meta["edgecv.task"] = task.name
    meta[OUTPUTS_KEY] = json.dumps([o.to_json() for o in outputs])
    meta["edgecv.version"] = str(ctx.metadata.get("edgecv_version", ""))
    meta["edgecv.recipe_sha256"] = str(ctx.metadata.get("recipe_sha256") or "unknown")
    meta["edgecv.compute_precision"] = precision
    meta["edgecv.compression"] = opts.compression + (f" sparsity={opts.sparsity}" if opts.compression == "prune" else "")
    meta[PREPROCESSING_KEY] = json.dumps(pre.to_json())
    if classifier:
        meta["com.apple.coreml.model.preview.type"] = "imageClassifier"  # Xcode's preview tab


def sample_pixels(ctx: ExportContext, size: tuple[int, int], n: int = 8) -> np.ndarray:
    """A few calibration images (training split) plus a ramp holding 0 and 255 in every channel."""
    h, w = size
    ramp = np.linspace(0, 255, h * w * 3).round().astype(np.uint8).reshape(1, h, w, 3)
    ramp[0, 0, 0], ramp[0, -1, -1] = 0, 255
    batches = [ramp]
    if ctx.calibration is not None:
        for i, batch in enumerate(ctx.calibration()):
            if i >= n:
                break
            batches.append(np.asarray(batch, np.uint8))
    return np.concatenate(batches)


def check_parity(task_model, found: ImagePreprocessing, samples: np.ndarray, kept: bool) -> dict:
    from edgecv.models.build import NORMALIZE_LAYER

    if not _has_normalize_layer(task_model.keras_model):
        return preprocessing_parity(found, lambda x: x.astype(np.float32), samples)
    layer = task_model.keras_model.get_layer(NORMALIZE_LAYER)

    def normalize(x):
        return layer(x.astype(np.float32)).numpy()

    return preprocessing_parity(found, normalize, samples, kept_layer=normalize if kept else None)


class CoreMLExporter(Exporter):
    format = "coreml"
    precisions = ("fp16", "fp32")  # compute precision; weight compression is options.compression

    @classmethod
    def check_spec(cls, spec, task=None) -> None:
        coreml_options(spec.options)

    def export(self, model, spec, out_dir: Path, ctx: ExportContext) -> Artifact:
        opts = coreml_options(spec.options)
        task = model.make_task()
        pre = fold_normalization(model)
        postprocess = task.postprocess(model.info)
        if postprocess is not None:
            return self._export_detector(model, spec, out_dir, ctx, opts, task, pre, postprocess)
        uncompressed = convert(model, spec.precision, opts, pre, task)
        mlmodel = compress(uncompressed, opts)
        describe(mlmodel, model, task, opts, pre, spec.precision, ctx)

        path = out_dir / f"{ctx.model_name}_{spec.name}.mlpackage"
        with atomic_path(path) as tmp:  # tmp ends in .mlpackage, as coremltools wants
            mlmodel.save(str(tmp))

        labels = task.coreml_classifier_labels(model.info)
        expected = Expected(INPUT_NAME, tuple(model.input_size), labels, pre, spec.precision,
                            opts.minimum_deployment_target, opts.compression,
                            opts.sparsity if opts.compression == "prune" else None, opts.weight_threshold,
                            outputs=tuple(model.output_names))
        checks = inspect_mlpackage(path, expected)
        if checks.get("image_preprocessing") is not None:
            found = ImagePreprocessing(**checks["image_preprocessing"])
            parity = check_parity(model, found, sample_pixels(ctx, model.input_size), kept=not pre.folded)
            checks["preprocessing_parity"] = parity
            if not parity["passed"]:
                checks["passed"] = False
                checks["message"] = "; ".join(filter(None, [checks["message"], (
                    f"the package's image preprocessing differs from the recipe's by up to "
                    f"{parity['max_abs_diff']:.3g} (tolerance {parity['tolerance']:.3g})")]))
        if opts.compression != "none" and checks.get("loads"):
            checks["weights"]["error_vs_uncompressed"] = compression_error(
                main_function(uncompressed), load_package(path)[2], INPUT_NAME)
        if not checks["passed"]:
            raise ConversionError(f"{path.name}: {checks['message']}")
        outputs = ({CLASSIFIER_OUTPUTS[0]: "string", CLASSIFIER_OUTPUTS[1]: "dict label -> probability"}
                   if labels is not None else {o: "multi-array" for o in model.output_names})
        for o in task.output_spec(model.info):
            if labels is None and o.dtype == "uint8":
                outputs[o.name] = "multi-array int32 (an ML Program has no uint8)"
        meta = {"minimum_deployment_target": opts.minimum_deployment_target, "compute_precision": spec.precision,
                "compression": opts.compression, "preprocessing": pre.to_json(), "outputs": outputs}
        if opts.compression == "prune":
            meta["sparsity"] = opts.sparsity
        return Artifact(spec.name, self.format, spec.precision, path, "coreml", checks=checks, metadata=meta)

    def _export_detector(self, model, spec, out_dir: Path, ctx: ExportContext, opts: CoreMLOptions, task, pre,
                         postprocess) -> Artifact:
        """A pipeline: the decoding detector, then Core ML's NonMaximumSuppression model."""
        import coremltools as ct


        program = compress(convert(model, spec.precision, opts, pre, task, postprocess), opts)
        scores_shape = dict(zip(model.output_names, model.keras_model.outputs))[postprocess.raw_outputs[1]].shape
        names = class_names_of(model.info, int(scores_shape[-1]))
        try:
            pipeline = ct.utils.make_pipeline(program, nms_model(program.get_spec(), postprocess, names))
        except Exception as e:
            raise ConversionError(f"coremltools could not build the NMS pipeline: {type(e).__name__}: {e}") from None
        h, w = model.input_size
        pipeline.author, pipeline.license = opts.author, opts.license
        pipeline.version = opts.version or str(ctx.metadata.get("edgecv_version", ""))
        pipeline.short_description = opts.description or (
            f"{ctx.model_name}: {model.backbone} object detector, {h}x{w} RGB input, Core ML NMS "
            f"({postprocess.nms.variant}), built by edgecv")
        pipeline.input_description[INPUT_NAME] = f"RGB image {w}x{h}; pixel values 0-255"
        pipeline.output_description[CONFIDENCE] = "confidence of each class for every kept box"
        pipeline.output_description[COORDINATES] = "kept boxes: x_center, y_center, width, height in [0, 1]"
        meta = pipeline.user_defined_metadata
        meta["edgecv.task"] = task.name
        meta["edgecv.postprocess"] = json.dumps(postprocess.describe())
        meta[PREPROCESSING_KEY] = json.dumps(pre.to_json())
        meta["edgecv.compute_precision"] = precision_note = spec.precision
        meta["edgecv.compression"] = opts.compression
        meta["com.apple.coreml.model.preview.type"] = "objectDetector"  # Xcode's preview tab
        path = out_dir / f"{ctx.model_name}_{spec.name}.mlpackage"
        with atomic_path(path) as tmp:
            pipeline.save(str(tmp))
        checks = inspect_pipeline(path, postprocess, names)
        checks["numeric_validation"] = "not run: Core ML predicts on macOS only (edgecv validate on a Mac)"
        if not checks["passed"]:
            raise ConversionError(f"{path.name}: {checks['message']}")
        metadata = {"minimum_deployment_target": opts.minimum_deployment_target, "compute_precision": precision_note,
                    "compression": opts.compression, "preprocessing": pre.to_json(),
                    "outputs": {CONFIDENCE: "multi-array [M, C]", COORDINATES: "multi-array [M, 4]"},
                    "postprocess": {**postprocess.describe(), "op": "NonMaximumSuppression (Core ML pipeline)",
                                    "computes_in": "Core ML NMS model", "raw_outputs": list(postprocess.raw_outputs),
                                    "note": f"a pipeline ending in Core ML's NonMaximumSuppression ({postprocess.nms.variant}"
                                            "): Vision returns recognized-object observations"}}
        return Artifact(spec.name, self.format, spec.precision, path, "coreml", checks=checks, metadata=metadata)
