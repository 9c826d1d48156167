"""The shared core: the problem spec, data sources, metric names, the readers of evaluation artifacts, and the
serving folder's contract (TF Serving's models.config, current.json, manifests, rollback).

Layers point one way: `dags` -> `pipelines` -> `components` -> `components.core`. Nothing here imports
another Blueprint package, and no module of `components` imports `pipelines` (tests/test_layers.py), so
the code the components run is exactly `components/**` (what `code_version()` fingerprints).
"""
