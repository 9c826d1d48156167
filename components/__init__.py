"""Blueprint's TFX components and the module code that TFX calls (preprocessing_fn, run_fn)."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
