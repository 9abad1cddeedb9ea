"""Quantization tools, in one home: TFLite converter settings (`tflite`), per-layer quantization
error (`diagnose`), the accuracy-aware search that keeps the worst layers in float
(`accuracy_aware`) and static int8 QDQ quantization of ONNX graphs (`qdq`).

Exporters and validation import these; these import neither (they take the task model, the
calibration images and, for the search, an evaluate callback). Nothing imports TensorFlow or
onnxruntime at import time.
"""
