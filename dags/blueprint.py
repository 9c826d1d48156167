"""Airflow DAGs for every problem spec in config/ (a training DAG each, and a monitoring DAG for spanned
data): adding a model is adding a YAML file. A spec that fails to load is listed as an import error of
that spec, and the other specs' DAGs still load. The workflow lives in pipelines/airflow/dags.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.airflow.dags import dags_for_config  # noqa: E402

globals().update(dags_for_config())
