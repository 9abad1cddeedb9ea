"""Quantization tools, in one home: TFLite converter settings (`tflite`), per-layer quantization
error (`diagnose`), the accuracy-aware search that keeps the worst layers in float
(`accuracy_aware`), static int8 QDQ quantization of ONNX graphs (`qdq`), and what prepares a float
model for int8 before either converter sees it (`ptq`): learned rounding (`adaround`) and bias
correction (`bias_correction`).

Exporters and validation import these; these import neither (they take the task model, the
calibration images and, for the search, an evaluate callback). Nothing imports TensorFlow or
onnxruntime at import time.
"""
