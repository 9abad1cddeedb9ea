"""Int8 preparation shared by the formats: static int8 QDQ quantization of ONNX graphs (`qdq`), and
what prepares a float model for int8 before a converter sees it (`ptq`): learned rounding
(`adaround`) and bias correction (`bias_correction`). Each format's own converter and diagnosis
live in its folder (edgecv/formats/tflite/convert.py, diagnose.py); the accuracy-aware search in
edgecv/formats/accuracy_aware.py.

The formats import these; these import no format. Nothing imports TensorFlow or onnxruntime at
import time.
"""
