"""One module per build step: index, calibration, train, reference, passes, export, validate, target.

Each `run(ctx, step, inputs)` gets the build's shared context (`context.StageContext`: recipe,
task, cache, console, decoded images), its graph step (key, target, artifact) and the outputs of
the steps it declares (`inputs["model"]`), and returns its own output; a step whose key is cached
loads its entry instead of working, without asking for its inputs.
"""
