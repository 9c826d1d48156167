"""AtomicPusher: TFX's Pusher, writing each version to a temporary folder renamed into place."""

from components.atomic_pusher.component import AtomicPusher

__all__ = ["AtomicPusher"]
