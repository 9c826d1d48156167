"""`python -m pipelines ...`: the Blueprint command line."""

import sys

from pipelines.ops.cli import main

sys.exit(main())
