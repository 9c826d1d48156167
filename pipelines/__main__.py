"""`python -m pipelines ...`: the Blueprint command line.

This process is the CLI's own: a run's log keeps descriptors 1 and 2 until the process exits, so what
TensorFlow prints while the interpreter shuts down goes to the log, not the console (`ops/run_log.py`).
"""

import sys

from pipelines.ops import run_log
from pipelines.ops.cli import main

run_log.keep_until_exit()
code = main()
run_log.at_exit()
sys.exit(code)
