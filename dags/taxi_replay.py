"""Airflow DAGs for config/taxi_replay.yaml: training on a rolling window of quarterly spans, and
drift monitoring of each new span. The workflow lives in pipelines/airflow/dags.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.airflow.dags import dags_for_spec  # noqa: E402

globals().update(dags_for_spec("config/taxi_replay.yaml"))
