"""Command line: `python -m pipelines run --config config/taxi.yaml` (see `--help`)."""

from __future__ import annotations

import argparse
import sys
import threading
import time
import traceback
from pathlib import Path

from components.core.spec import ProblemSpec, SpecError, load_spec
from pipelines import settings
from pipelines.paths import DEFAULT_HOME, MetadataConfigError, RunPaths, mysql_settings
from pipelines.workflow.errors import innermost_message

EXIT_FAILED = 1
EXIT_BAD_SPEC = 2


class RunFailed(RuntimeError):
    """The pipeline stopped; the message says at which component and why."""


def run_training(
    spec: ProblemSpec,
    home: str | Path = DEFAULT_HOME,
    enable_cache: bool = True,
    verbose: bool = False,
    beam_args: list[str] | None = None,
):
    """Runs the training pipeline with LocalDagRunner and returns the run's summary from MLMD.

    Raises RunFailed with a readable reason when a component fails.
    """
    # Not `tfx.v1`: it also imports the Google Cloud extensions (~8 s), which a local run never uses.
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    from pipelines.ops import progress
    from pipelines.workflow import results, training

    paths = RunPaths.for_spec(spec.name, home)
    progress.quiet_libraries(verbose)
    pipeline = training.create_pipeline(spec, paths, beam_args=beam_args, enable_cache=enable_cache)
    with progress.track_components(spec=spec) as tracker:
        try:
            LocalDagRunner().run(pipeline)
        except Exception as error:  # noqa: BLE001 - turned into one readable message
            where = tracker.current or "the pipeline"
            raise RunFailed(f"{where} failed: {innermost_message(error)}") from error
    # Where the pipeline wrote: MySQL when BLUEPRINT_MLMD_MYSQL says so, not always the SQLite file.
    summary = results.latest_run(paths.metadata_config(), training.pipeline_name(spec))
    if summary is None:
        raise RunFailed("the run left no record in ML Metadata")
    return summary


def print_summary(summary, spec: ProblemSpec, paths: RunPaths, seconds: float) -> None:
    from pipelines.ops import deployments

    print()
    print(f"Run {summary.run_id} of {summary.pipeline_name} finished in {seconds:.0f}s")
    executed = [node for node in summary.executed if not node.endswith("_resolver")]
    print(f"  executed: {', '.join(executed) or 'nothing (all cached)'}")
    if summary.cached:
        print(f"  cached:   {', '.join(summary.cached)}")
    for column, reason in summary.left_out_columns.items():
        print(f"  not used: {column}: {reason}")
    if summary.metrics:
        print("  metrics on the test split (the final model, evaluated once):")
        for name, value in sorted(summary.metrics.items()):
            print(f"    {name:32s} {value:.4f}")
    goal = f"{spec.metric.name} {'>=' if spec.metric.higher_is_better else '<='} {spec.metric.threshold:g}"
    if summary.power_message:
        print(f"  dumb baseline: {summary.power_message}")
    if summary.simple_model_message:
        print(f"  simple model: {summary.simple_model_message}")
    if summary.blessed:
        print(f"  blessed:  yes ({goal}, beats the dumb baseline, no regression vs the model in production)")
    else:
        print(f"  blessed:  no (needs {goal} and to beat the dumb baseline)")
        for failure in summary.validation_failures:
            print(f"    - {failure}")
        if summary.power_message and summary.power_message.startswith("no statistical power"):
            print(f"    - {summary.power_message}")
    if summary.pushed_new:
        print(f"  pushed:   version {summary.pushed_version} -> {summary.pushed_path}")
        manifest = deployments.read_manifest(summary.pushed_path)
        if manifest.get("test_rows"):
            print(
                f"  targets on the {manifest['test_rows']} test rows (manifest.json in the version folder):"
            )
        for line in deployments.target_table(manifest):
            print(f"    {line}")
    elif summary.pushed:
        print(f"  pushed:   nothing new (no change since version {summary.pushed_version} was pushed)")
    else:
        print("  pushed:   nothing new" + (" (not blessed)" if not summary.blessed else ""))
        for line in refused_targets(summary):
            print(f"    {line}")
    for line in tuning_lines(summary):
        print(line)
    if summary.report_path:
        print(f"  report:   {summary.report_path}")
    print(f"  serving:  {paths.serving_dir}  (TF Serving model base path)")
    print(f"  artifacts: {paths.pipeline_root}")
    print(f"  metadata: {paths.metadata_location()}")


def refused_targets(summary) -> list[str]:
    """A blessed model pushes nothing when the ModelExporter refused its SavedModel (a compute gate):
    the targets' table from its `targets.json` says why, with the figures."""
    from components.core.artifacts import DEVICE_MODELS_KEY, TARGETS_FILE, read_targets
    from pipelines.ops import deployments

    uris = summary.outputs.get("ModelExporter", {}).get(DEVICE_MODELS_KEY)
    if not summary.blessed or not uris or not Path(uris[0], TARGETS_FILE).is_file():
        return []
    targets = read_targets(uris[0])
    if not targets.get("exported"):
        return []
    judged = [{**target, "pushed": target["passed"]} for target in targets["targets"]]
    return deployments.target_table({**targets, "targets": judged})


def tuning_lines(summary) -> list[str]:
    """What the capacity sweep and the search spent of their budget, and what they chose."""
    import json

    from components.core.artifacts import PROTOCOL_FILE

    uris = summary.outputs.get("Tuner", {}).get("tuner_results")
    path = Path(uris[0], PROTOCOL_FILE) if uris else None
    if path is None or not path.is_file():
        return []
    protocol = json.loads(path.read_text())
    budget = protocol.get("budget") or {}
    sweep = [step["name"] for step in protocol.get("capacity_sweep", [])]
    best = budget.get("best", {})
    chosen = ", ".join(
        f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}" for name, value in best.items()
    )
    spent, allowed = budget.get("spent_seconds", 0) / 60, budget.get("budget_seconds", 0) / 60
    trials = f"{budget.get('trials_run', 0)} {budget.get('search', '')} trial(s)"
    return [
        f"  tuning:   {spent:.1f} of {allowed:.1f} min; sweep {' -> '.join(sweep)}; {trials}, "
        f"stopped by {budget.get('stopped_by', '?')}",
        f"            best: {chosen}",
    ]


def _describe_data(spec: ProblemSpec) -> None:
    """Says how the data is read (the delimiter, detected or named) and warns about unused columns."""
    from components.core import sources, tables

    files = sources.glob_files(spec.data.source_glob)
    if not files:
        return
    if spec.data.format == "csv":
        delimiter = spec.data.csv_format.delimiter_of(files[-1])
        how = "from the spec" if spec.data.delimiter else "detected"
        print(f"  data:     {len(files)} file(s), {tables.describe_delimiter(delimiter)} ({how})")
    else:
        print(f"  data:     {len(files)} {spec.data.format} file(s)")
    for name in spec.found_datetimes:
        print(f"  datetime: {name} (ISO-8601 dates): its hour, weekday and month are features")
    unused = spec.unused_columns(
        sources.read_header(spec.data.source_glob, spec.data.csv_format, spec.data.format)
    )
    if unused:
        print(
            f"warning: column(s) {', '.join(unused)} are in the data but neither features, label nor "
            "excluded in the spec; they are not used (add them to 'features' or 'exclude')"
        )


def _cmd_run(args: argparse.Namespace) -> int:
    spec = load_spec(args.config)
    mysql_settings()  # a missing MLMD credential stops the run now, not after TensorFlow has loaded
    started = time.monotonic()
    print(
        f"Blueprint: training '{spec.name}' ({spec.task.value}, label {spec.label}) from {spec.data.source}"
    )
    _describe_data(spec)
    if spec.tuning is None:
        print("  tuning:   off (trains `training` as written; omit `tuning: off` to sweep and tune)")
    else:
        print(
            f"  tuning:   capacity sweep and {spec.tuning.search} search within "
            f"{spec.tuning.budget_minutes:g} min (tuning.budget_minutes) or {spec.tuning.trials} trials"
        )
    beam = settings.beam_settings(spec, args.beam_profile)
    print(f"  beam:     {' '.join(beam.pipeline_args())}")
    from pipelines.ops import run_log

    # Everything the libraries print goes to one log per run (TensorFlow is imported inside).
    log = run_log.log_path(spec.name, args.home)
    try:
        with run_log.capture(log, verbose=args.verbose, title=" ".join(sys.argv)):
            summary = run_training(
                spec,
                args.home,
                enable_cache=not args.no_cache,
                verbose=args.verbose,
                beam_args=settings.beam_args(spec, args.beam_profile),
            )
    except RunFailed as failure:
        if args.verbose:
            traceback.print_exc()
        print(f"\nRun stopped: {failure}\n  log:      {log}", file=sys.stderr)
        return EXIT_FAILED
    print_summary(summary, spec, RunPaths.for_spec(spec.name, args.home), time.monotonic() - started)
    print(f"  log:      {log}  (what the libraries printed; --verbose shows it live)")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    spec = load_spec(args.config)
    print(f"{args.config}: valid. Task {spec.task.value}, label {spec.label}, data {spec.data.source}")
    return 0


def _cmd_land(args: argparse.Namespace) -> int:
    from pipelines.workflow import landing

    spec = load_spec(args.config, check_data=False)
    if args.annotations:
        return _land_annotations(spec, args)
    if not args.files:
        print("Not landed: pass the CSV file(s) of the new span (or --annotations FILE)", file=sys.stderr)
        return EXIT_FAILED
    try:
        span = landing.land_span(spec, args.files, span=args.span)
    except landing.LandingError as error:
        print(f"Not landed: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(f"Landed span {span} at {landing.span_folder(spec, span)}")
    return 0


def _land_annotations(spec: ProblemSpec, args: argparse.Namespace) -> int:
    from components.core import annotations
    from pipelines.ops import audit, progress
    from pipelines.workflow import landing

    if args.files or args.span is not None:
        print("Not landed: --annotations lands one audit file as the next span, alone", file=sys.stderr)
        return EXIT_FAILED
    progress.quiet_libraries()
    paths = RunPaths.for_spec(spec.name, args.home)
    try:
        record = audit.land_annotations(spec, paths, Path(args.annotations))
    except (audit.AuditError, landing.LandingError) as error:
        print(f"Not landed: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"Landed {args.annotations} as span {record['span']} at {landing.span_folder(spec, record['span'])}"
    )
    print(f"  {annotations.describe(record)}")
    print(f"  record: {annotations.record_path(paths.monitoring_dir, record['span'])}")
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    from pipelines.ops import audit, progress

    progress.quiet_libraries()
    spec = load_spec(args.config, check_data=False)
    paths = RunPaths.for_spec(spec.name, args.home)
    try:
        done = audit.audit_span(
            spec, paths, Path(args.output), args.span, args.fraction, args.hardest, args.seed
        )
    except audit.AuditError as error:
        print(f"No audit written: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"Audit of span {done.span} ({done.span_rows} rows) with version {done.version}: {done.rows} row(s) "
        f"({done.sampled} sampled at random, {done.hardest} the model is least sure about) -> {done.output}"
    )
    print(
        f"  fill {', '.join(spec.label_columns)} in the rows you annotate, then: python -m pipelines land "
        f"--config {args.config} --annotations {done.output}"
    )
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from pipelines.workflow import landing, monitoring

    spec = load_spec(args.config, check_data=False)
    paths = RunPaths.for_spec(spec.name, args.home)
    span = args.span if args.span is not None else landing.newest_span(spec)
    if span is None:
        print(f"No span has landed under {landing.landing_folder(spec)}", file=sys.stderr)
        return EXIT_FAILED
    try:
        report = monitoring.check_span(spec, paths, span, beam_profile=args.beam_profile)
    except (monitoring.BadSpanError, landing.LandingError) as error:
        print(f"Check failed: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(report.summary())
    print(f"Reports: {paths.monitoring_dir}")
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    from components.core import models_config
    from pipelines.ops import deployments

    spec = load_spec(args.config, check_data=False)
    serving_dir = RunPaths.for_spec(spec.name, args.home).serving_dir
    try:
        was, now = models_config.rollback(serving_dir.parent, serving_dir.name, to=args.to)
    except models_config.RollbackError as error:
        print(f"Not rolled back: {error}", file=sys.stderr)
        return EXIT_FAILED
    current = models_config.read_current(serving_dir.parent, serving_dir.name)
    print(f"'{spec.name}': every target now serves version {now} (was {was}); nothing was deleted.")
    for line in deployments.target_table(current.get("manifest", {})):
        print(f"    {line}")
    print(f"  TF Serving: {serving_dir.parent / models_config.MODELS_CONFIG}")
    print(f"  devices and browsers: {serving_dir / models_config.CURRENT}")
    return 0


def _cmd_page(args: argparse.Namespace) -> int:
    from pipelines.ops import page_server

    spec = load_spec(args.config, check_data=False)
    serving_dir = RunPaths.for_spec(spec.name, args.home).serving_dir
    try:
        server = page_server.start(serving_dir.parent, port=args.port)
    except page_server.PageError as error:
        print(f"Cannot serve the page: {error}", file=sys.stderr)
        return EXIT_FAILED
    host, port = server.server_address[:2]
    url = f"http://{host}:{port}/index.html?model={serving_dir.name}"
    print(f"TF.js page for '{spec.name}': {url}  (Ctrl-C stops)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from pipelines.airflow import replay

    try:
        replay.simulate(Path(args.home), spec_file=args.config, limit=args.spans)
    except replay.ReplayError as error:
        print(f"Cannot replay: {error}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from pipelines.ops import predict, progress

    progress.quiet_libraries()
    spec = load_spec(args.config, check_data=False)
    paths = RunPaths.for_spec(spec.name, args.home)
    keep = [column.strip() for column in args.keep.split(",") if column.strip()] if args.keep else None
    try:
        scored = predict.predict_file(
            spec, paths, Path(args.input), Path(args.output), args.target, args.version, keep
        )
    except predict.PredictError as error:
        print(f"Not scored, nothing written: {error}", file=sys.stderr)
        return EXIT_FAILED
    served = scored.served
    print(
        f"Scored {scored.rows} row(s) of {args.input} with '{served.model}' version {served.version} "
        f"({served.target_name}) -> {scored.output}"
    )
    print(f"  added: {', '.join(scored.added)}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    import json

    from pipelines.ops import progress, status

    progress.quiet_libraries()
    names = [load_spec(path, check_data=False).name for path in args.config or []]
    report = status.status(Path(args.home), names)
    print(json.dumps(report, indent=1) if args.json else status.text(report))
    return 0


def _cmd_airflow(args: argparse.Namespace) -> int:
    from pipelines.airflow import profile as airflow_profile

    try:
        if args.profile == "local":
            return airflow_profile.start_local(args.profile)
        return airflow_profile.start_production(args.profile)
    except airflow_profile.ProfileError as error:
        print(f"Cannot start Airflow: {error}", file=sys.stderr)
        return EXIT_FAILED


BEAM_PROFILE_HELP = (
    "where the Beam components run: a profile of config/beam/ (direct, direct-all-cores, portable, flink, "
    "spark, dataflow) or a YAML file; replaces the spec's `beam` section"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the training pipeline for a problem spec")
    run.add_argument("--config", required=True, help="problem spec (YAML), e.g. config/taxi.yaml")
    run.add_argument("--home", default=str(DEFAULT_HOME), help="where runs keep artifacts (build/)")
    run.add_argument("--no-cache", action="store_true", help="re-run every component")
    run.add_argument(
        "--verbose", action="store_true", help="show the run's log (TFX's, TensorFlow's output) live"
    )
    run.add_argument("--beam-profile", help=BEAM_PROFILE_HELP)
    run.set_defaults(handler=_cmd_run)
    validate = commands.add_parser("validate", help="check a problem spec and its data header")
    validate.add_argument("--config", required=True)
    validate.set_defaults(handler=_cmd_validate)
    land = commands.add_parser("land", help="land CSV file(s) as the next span of a spanned spec")
    land.add_argument("--config", required=True)
    land.add_argument("--span", type=int, help="span number (default: the next one)")
    land.add_argument(
        "--annotations",
        metavar="FILE",
        help="an annotated audit file: measure the model's agreement, land its rows as the next span",
    )
    land.add_argument("--home", default=str(DEFAULT_HOME), help="where runs keep their outputs")
    land.add_argument("files", nargs="*", help="CSV file(s) of the new span")
    land.set_defaults(handler=_cmd_land)
    audit = commands.add_parser(
        "audit", help="write a span's rows for annotators: a random sample and the model's hardest rows"
    )
    audit.add_argument("--config", required=True, help="a spanned problem spec (YAML)")
    audit.add_argument("--home", default=str(DEFAULT_HOME), help="where runs keep their outputs")
    audit.add_argument("--span", type=int, help="span number (default: the newest)")
    audit.add_argument("--fraction", type=float, default=0.05, help="share of the span's rows sampled (0.05)")
    audit.add_argument(
        "--hardest", type=int, default=20, help="rows the model in service is least sure about (20)"
    )
    audit.add_argument("--seed", type=int, default=0, help="seed of the random sample")
    audit.add_argument("--output", required=True, metavar="FILE.csv", help="the file for annotators")
    audit.set_defaults(handler=_cmd_audit)
    check = commands.add_parser("check", help="check a landed span for bad data and drift, write its report")
    check.add_argument("--config", required=True)
    check.add_argument("--home", default=str(DEFAULT_HOME))
    check.add_argument("--span", type=int, help="span number (default: the newest)")
    check.add_argument("--beam-profile", help=BEAM_PROFILE_HELP)
    check.set_defaults(handler=_cmd_check)
    rollback = commands.add_parser(
        "rollback",
        help="serve the version that served before the current one (or --to VERSION), for every target",
    )
    rollback.add_argument("--config", required=True, help="problem spec (YAML)")
    rollback.add_argument("--home", default=str(DEFAULT_HOME), help="where runs keep their outputs")
    rollback.add_argument(
        "--to",
        type=int,
        default=None,
        metavar="VERSION",
        help="serve this version (default: the one that served before the current one, skipping versions "
        "rolled back from)",
    )
    rollback.set_defaults(handler=_cmd_rollback)
    predict = commands.add_parser(
        "predict", help="score a CSV file with the model in service (or --version, --target)"
    )
    predict.add_argument("--config", required=True, help="problem spec (YAML)")
    predict.add_argument("--home", default=str(DEFAULT_HOME), help="where runs keep their outputs")
    predict.add_argument("--input", required=True, metavar="FILE.csv", help="the rows to score")
    predict.add_argument(
        "--output", required=True, metavar="OUT.csv", help="written whole at the end, or not at all"
    )
    predict.add_argument(
        "--target",
        default=None,
        help="serving (the SavedModel, default) or a device target of the version: tflite-float32, "
        "tflite-dynamic, tflite-int8, tfjs-float32, tfjs-uint8 (as the spec's `deployment` builds them)",
    )
    predict.add_argument("--version", type=int, default=None, help="a pushed version (default: in service)")
    predict.add_argument(
        "--keep", metavar="COLS", help="comma-separated input columns to copy to the output (default: all)"
    )
    predict.set_defaults(handler=_cmd_predict)
    status = commands.add_parser(
        "status", help="the version in service, its history, the last drift check and run, per model"
    )
    status.add_argument(
        "--config", action="append", help="problem spec (YAML; repeatable; default: every model in --home)"
    )
    status.add_argument("--home", default=str(DEFAULT_HOME), help="where runs keep their outputs")
    status.add_argument("--json", action="store_true", help="print machine-readable JSON")
    status.set_defaults(handler=_cmd_status)
    page = commands.add_parser("page", help="serve the TF.js page for the model in service on 127.0.0.1")
    page.add_argument("--config", required=True, help="problem spec (YAML)")
    page.add_argument("--home", default=str(DEFAULT_HOME))
    page.add_argument("--port", type=int, default=8000)
    page.set_defaults(handler=_cmd_page)
    simulate = commands.add_parser("simulate", help="replay the taxi data quarter by quarter through Airflow")
    simulate.add_argument(
        "--config", default="config/taxi_replay.yaml", help="a spanned spec (repo-relative)"
    )
    simulate.add_argument(
        "--home",
        default=str(DEFAULT_HOME / "replay"),
        help="the replay's own home, emptied by each replay (build/replay); refuses a folder it did not make",
    )
    simulate.add_argument("--spans", type=int, help="replay only the first N quarters")
    simulate.set_defaults(handler=_cmd_simulate)
    airflow = commands.add_parser("airflow", help="start Airflow with a profile from config/airflow/")
    airflow.add_argument(
        "--profile",
        default="local",
        help="local (SQLite, SequentialExecutor), production (PostgreSQL, LocalExecutor) or celery "
        "(PostgreSQL, CeleryExecutor with Redis and N local workers)",
    )
    airflow.set_defaults(handler=_cmd_airflow)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except SpecError as error:
        print(f"Invalid spec: {error}", file=sys.stderr)
        return EXIT_BAD_SPEC
    except MetadataConfigError as error:
        print(f"Cannot use ML Metadata: {error}", file=sys.stderr)
        return EXIT_FAILED
