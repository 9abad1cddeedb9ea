"""Metrics of dense tasks in numpy alone (detection boxes, segmentation masks): they run on devices
without TensorFlow or scipy, as `edgecv validate` does, and give the same numbers everywhere."""
