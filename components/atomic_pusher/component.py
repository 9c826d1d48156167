"""AtomicPusher component: the standard Pusher with an executor that never shows half a version."""

from tfx.components import Pusher
from tfx.dsl.components.base import executor_spec

from components.atomic_pusher.executor import Executor


class AtomicPusher(Pusher):
    """Pushes a blessed model to `<base>/<version>/` for TF Serving, atomically.

    TFX's own Pusher copies straight into the version folder, and TF Serving can load a version
    while it is half-copied. This one copies into a hidden temporary folder on the same filesystem
    and renames it into place, so a version either is complete or does not exist.
    """

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
