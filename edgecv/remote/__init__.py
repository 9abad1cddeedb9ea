"""Benchmarks on a device over SSH: copy a minimal bundle, run `edgecv bench` there, fetch the result."""
