"""`python -m pipelines ...`: the Blueprint command line."""

import sys

import pipelines  # noqa: F401  (selects tf_keras before TensorFlow is imported)
from pipelines.cli import main

sys.exit(main())
