"""The run log: what libraries print (Python, native code, child processes) goes to one file per run;
the console keeps Blueprint's own lines. Each case runs in a process of its own, as the CLI does (it
moves file descriptors 1 and 2)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.helpers.data import REPO_ROOT

CHATTER = """
    import logging, os, subprocess, sys, warnings
    from pathlib import Path
    from absl import logging as absl_logging
    from pipelines.ops import run_log

    seen = []
    with run_log.capture(Path(sys.argv[1]), verbose=VERBOSE) as log:
        log.observers.append(seen.append)
        print("python stdout")
        print("python stderr", file=sys.stderr)
        os.write(1, b"native fd 1\\n")
        os.write(2, b"native fd 2\\n")
        subprocess.run(["sh", "-c", "echo child out; echo child err >&2"], check=True)
        logging.getLogger("some.library").warning("a library warning")
        absl_logging.info("an absl info record")
        warnings.warn("a python warning")
        print("Blueprint progress", file=run_log.console(), flush=True)
    print("Blueprint summary", flush=True)
    print("observed:", sorted(seen), file=sys.stderr, flush=True)
"""
LIBRARY_LINES = (
    "python stdout",
    "python stderr",
    "native fd 1",
    "native fd 2",
    "child out",
    "child err",
    "a library warning",
    "an absl info record",
    "a python warning",
)


def run_script(body: str, log: Path, verbose: bool = False, cli: bool = True):
    script = textwrap.dedent(body).replace("VERBOSE", str(verbose))
    if cli:  # what pipelines/__main__.py does around the command
        script = (
            "from pipelines.ops import run_log\nrun_log.keep_until_exit()\n"
            + script
            + "\nrun_log.at_exit()\nimport os\nos.write(2, b'interpreter shutdown noise\\n')\n"
        )
    return subprocess.run(
        [sys.executable, "-c", script, str(log)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_console_shows_blueprints_lines_and_the_log_gets_everything_else(tmp_path):
    log = tmp_path / "logs" / "run.log"
    done = run_script(CHATTER, log)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Blueprint progress\nBlueprint summary\n"
    assert done.stderr.startswith("observed:")  # after the run, stderr is the console's again
    text = log.read_text()
    for line in LIBRARY_LINES:
        assert line in text, line
        assert line not in done.stdout
    assert "interpreter shutdown noise" in text, "the CLI process keeps its descriptors on the log"
    assert "Blueprint progress" not in text and "Blueprint summary" not in text
    # Lines written to Python's streams during the run reach the observers (the progress display).
    observed = done.stderr
    assert "'python stdout'" in observed and "'python stderr'" in observed


def test_in_process_the_capture_puts_the_streams_back(tmp_path):
    log = tmp_path / "run.log"
    body = (
        CHATTER
        + """
    os.write(1, b"native after\\n")
    print("python after")
    """
    )
    done = run_script(body, log, cli=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Blueprint progress\nBlueprint summary\nnative after\npython after\n"
    assert "native after" not in log.read_text()


def test_verbose_shows_the_log_live(tmp_path):
    log = tmp_path / "run.log"
    done = run_script(CHATTER, log, verbose=True)
    assert done.returncode == 0, done.stderr
    for line in LIBRARY_LINES:
        assert line in done.stdout, line
        assert line in log.read_text()
    assert "Blueprint summary" in done.stdout


def test_an_error_leaving_the_run_is_written_to_the_log_with_its_traceback(tmp_path):
    log = tmp_path / "run.log"
    body = """
    import sys
    from pathlib import Path
    from pipelines.ops import run_log

    try:
        with run_log.capture(Path(sys.argv[1])):
            raise RuntimeError("the Transform broke")
    except RuntimeError as error:
        print(f"Run stopped: {error}", file=sys.stderr)
    """
    done = run_script(body, log)
    assert done.returncode == 0 and done.stdout == "", done.stderr
    assert done.stderr == "Run stopped: the Transform broke\n"
    text = log.read_text()
    assert "Traceback" in text and "RuntimeError: the Transform broke" in text


def test_each_run_gets_a_new_log_under_the_home(tmp_path):
    from pipelines.ops import run_log

    first = run_log.log_path("taxi", tmp_path)
    first.parent.mkdir(parents=True)
    first.write_text("")
    second = run_log.log_path("taxi", tmp_path)
    assert first.parent == tmp_path.resolve() / "logs" / "taxi" == second.parent
    assert second != first and second.suffix == ".log"
