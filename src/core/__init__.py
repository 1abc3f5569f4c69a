"""Infrastructure every layer uses: errors, params and their schema, atomic writes, paths, devices, signals, CLI glue.

Nothing here knows about a model or a dataset; the packages above (data, scoring, checkpoints,
training, models, recipes) import from here, never the reverse.
"""
