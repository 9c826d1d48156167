"""Blueprint pipelines: the problem spec, the TFX pipeline factories and the CLI.

Importing this package selects Keras 2 (tf_keras) for TensorFlow: TFX 1.16, TF Transform and
tensorflow-model-optimization all need it, and it must be chosen before TensorFlow is imported.
"""

import os
import warnings

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# google-api-core warns on every import that Python 3.10 support ends; TFX 1.16 needs 3.10.
warnings.filterwarnings("ignore", category=FutureWarning, module="google.api_core")
