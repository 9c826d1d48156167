"""Blueprint pipelines: the TFX pipeline factories (`workflow`), Airflow (`airflow`) and the CLI and
operations (`ops`).

Importing this package first imports `components`, which selects Keras 2 (tf_keras) before TensorFlow
is imported.
"""

import components  # noqa: F401
