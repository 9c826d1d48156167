"""Blueprint's TFX components, the module code TFX calls, and the shared core they stand on.

Importing this package prepares TensorFlow for every process that runs Blueprint's code (the CLI, the DAG
files, Airflow's scheduler and tasks, the tests, TFX loading module code): Keras 2 (`tf_keras`), which
TFX 1.16, TF Transform and tensorflow-model-optimization need, chosen before TensorFlow is imported, and
no C++ log lines below errors, and OpenMP threads that sleep while they wait. This is the one place that
sets it; `pipelines` imports this package first.
"""

import os
import warnings

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# OpenMP's threads (scikit-learn's gradient-boosted trees in the DumbBaselineGate) spin while they wait by
# default; with other processes on the same cores (Airflow tasks side by side, the test suite) the spinning
# threads took the cores from the ones with work: the trees on the digits table took 62 s instead of 7 s.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# google-api-core warns on every import that Python 3.10 support ends; TFX 1.16 needs 3.10.
warnings.filterwarnings("ignore", category=FutureWarning, module="google.api_core")
