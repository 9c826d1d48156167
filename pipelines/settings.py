"""What every part of `pipelines` shares: where the repository is, and how Beam runs by default."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPONENTS_DIR = REPO_ROOT / "components"
# Beam's DirectRunner in this process with one worker: the data components' jobs are small, and process
# start-up would cost more than it saves. Larger data: `beam_pipeline_args` (the spec's or --beam-arg).
DEFAULT_BEAM_ARGS = ("--direct_running_mode=in_memory", "--direct_num_workers=1")
