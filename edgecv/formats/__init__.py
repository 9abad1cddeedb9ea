"""Artifact formats, one folder each (edgecv.registry.FORMAT_PACKAGES has one row per format):
`export` (the Exporter: its options, what goes into its export key, its runtime settings),
`runtime` (the Runtime: its file suffixes, loading and predicting on devices without TensorFlow),
and what else the format needs (`convert`, `checks`, `diagnose`, `session`, `bundle` ...).
The orchestrator asks these objects and branches on no format name."""
