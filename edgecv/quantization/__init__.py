"""Int8 preparation shared by the formats: static int8 QDQ quantization of ONNX graphs (`qdq`), and
a TFLite artifact's int8 settings (`ptq`: which int8 passes run, the output type). Learned rounding
and bias correction are passes (edgecv.passes.adaround, .bias_correction: every model-to-model step
lives in edgecv.passes; the old names here still import). Each format's own converter and diagnosis
live in its folder (edgecv/formats/tflite/convert.py, diagnose.py); the accuracy-aware search in
edgecv/formats/accuracy_aware.py.

The formats import these; these import no format (and passes, not the other way). Nothing imports TensorFlow or onnxruntime at
import time.
"""
