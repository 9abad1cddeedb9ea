"""One module per build stage: index, train, reference, passes, export, validate.

Each takes the running `Build` (its recipe, task, cache and stage records) and returns what the
next stage needs; a stage whose key is cached loads its entry instead of working.
"""
