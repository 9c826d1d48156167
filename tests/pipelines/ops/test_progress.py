"""The progress display: one line per component, and what a long one is doing, read from the lines the
components log and Keras and KerasTuner print (as they print them in a real run)."""

from __future__ import annotations

import io
import re
import threading
import time
from types import SimpleNamespace

import pytest

from pipelines.ops import progress
from pipelines.ops.progress import ComponentProgress

SPEC = SimpleNamespace(
    tuning=SimpleNamespace(trials=3),
    metric=SimpleNamespace(name="auc", higher_is_better=True),
    deployment=SimpleNamespace(tflite=["float32", "int8"], tfjs=["uint8"]),
)
TUNER = [
    "Tuning on 9000 train and 3000 eval rows (hold-out)",
    "Capacity sweep: 16 trained 12 epochs, best validation loss 0.2100 at epoch 9",
    "Search space summary",
    "Search: Running Trial #1",
    "Trial 0: val_auc 0.9480 over 4 folds",
    "Trial 1 Complete [00h 00m 17s]",
    "Search: Running Trial #2",
    "Trial 1: val_auc 0.9544 over 4 folds",
    "Search: Running Trial #3",
    "Trial 2: val_auc 0.9514 over 4 folds",
]
TRAINER = [
    "Epoch 1/10",
    "213/213 - 8s - loss: 0.5511 - auc: 0.5870 - 8s/epoch - 38ms/step",
    "Epoch 2/10",
    "213/213 - 1s - loss: 0.3098 - auc: 0.9320 - val_loss: 0.3000 - val_auc: 0.9412 - 1s/epoch - 6ms/step",
]
EXPORTER = [
    "SavedModel: auc 0.9585 on 1433 test rows",
    "tflite-float32: converting and checking",
    "tflite-float32: passes (1.2s)",
    "tflite-int8: converting and checking",
    "tflite-int8: passes (2.0s)",
    "tfjs-uint8: converting and checking",
    "tfjs-uint8: NOT pushed: RuntimeFailure: node failed (3.0s)",
]
STAMP = re.compile(r"^\[\s*\d+\.\ds\] ")


def run_component(node: str, lines: list[str], live: bool = False, **finished) -> list[str]:
    out = io.StringIO()
    shown = ComponentProgress(stream=out, spec=SPEC, live=live)
    shown.started(node)
    for line in lines:
        shown.observe(line)
    shown.finished(node, finished.get("seconds", 12.5), cached=finished.get("cached", False))
    shown.close()
    return out.getvalue().splitlines()


def test_one_line_per_component_says_what_it_did():
    assert [STAMP.sub("", line) for line in run_component("Transform", [])] == ["Transform: finished (12.5s)"]
    assert STAMP.sub("", run_component("Tuner", TUNER)[-1]) == (
        "Tuner: finished (12.5s): 3 of 3 trials, best val_auc 0.9544"
    )
    assert STAMP.sub("", run_component("Trainer", TRAINER)[-1]) == (
        "Trainer: finished (12.5s): 2 of 10 epochs, val_auc 0.9412"
    )
    assert STAMP.sub("", run_component("ModelExporter", EXPORTER)[-1]) == (
        "ModelExporter: finished (12.5s): 3 device target(s), 2 pass parity"
    )
    assert STAMP.sub("", run_component("Trainer", TRAINER, cached=True)[-1]) == (
        "Trainer: finished (cached, 12.5s)"
    )


def test_the_final_model_without_validation_data_reports_the_training_metric():
    lines = [*TRAINER[:2], "Model saved to /tmp/serving after 1 epochs"]
    assert run_component("Trainer", lines)[-1].endswith("Trainer: finished (12.5s): 1 epochs, auc 0.5870")


def test_resolvers_get_no_line():
    assert run_component("baseline_model_resolver", [], seconds=0.1) == []


def test_plain_lines_say_what_a_long_component_is_doing_at_most_every_so_often(monkeypatch):
    assert len(run_component("Tuner", TUNER)) == 1, "a quick component: its finished line only"
    monkeypatch.setattr(progress, "PLAIN_DETAIL_SECONDS", 0.0)
    states = [STAMP.sub("", line) for line in run_component("Tuner", TUNER)[:-1]]
    assert states[0] == "Tuner: tuning on 9000 train + 3000 eval rows: capacity sweep"
    assert "Tuner: capacity sweep: 16 trained 12 epochs, val loss 0.2100" in states
    assert "Tuner: trial 2 of 3 running, best val_auc 0.9480" in states
    assert states[-1] == "Tuner: trial 3 of 3 done, best val_auc 0.9544"
    trainer = [STAMP.sub("", line) for line in run_component("Trainer", TRAINER)[:-1]]
    assert trainer == [
        "Trainer: epoch 1 of 10",
        "Trainer: epoch 1 of 10 done, auc 0.5870",
        "Trainer: epoch 2 of 10 (epoch 1: auc 0.5870)",
        "Trainer: epoch 2 of 10 done, val_auc 0.9412",
    ]
    exporter = [STAMP.sub("", line) for line in run_component("ModelExporter", EXPORTER)[:-1]]
    assert "ModelExporter: converting and checking tflite-int8 (target 2 of 3)" in exporter


def test_a_lower_is_better_metric_keeps_the_lowest_score():
    spec = SimpleNamespace(
        tuning=SimpleNamespace(trials=2), metric=SimpleNamespace(name="mse", higher_is_better=False)
    )
    out = io.StringIO()
    shown = ComponentProgress(stream=out, spec=spec, live=False)
    shown.started("Tuner")
    shown.observe("Trial 0: val_mse 12.5 over 1 folds")
    shown.observe("Trial 1: val_mse 30.0 over 1 folds")
    shown.finished("Tuner", 3.0, cached=False)
    assert out.getvalue().rstrip().endswith("2 of 2 trials, best val_mse 12.5000")


def test_the_live_line_shows_the_component_under_way():
    out = io.StringIO()
    shown = ComponentProgress(stream=out, spec=SPEC, live=True)
    shown.started("Tuner")
    for line in TUNER[:5]:
        shown.observe(line)
    assert re.fullmatch(r"Tuner \(\d+s\): trial 1 of 3 done, best val_auc 0.9480", shown.status_text())
    shown.finished("Tuner", 3.0, cached=False)
    assert shown.status_text().endswith("s") and "Tuner" not in shown.status_text()
    shown.close()
    assert "Tuner: finished (3.0s): 1 of 3 trials, best val_auc 0.9480" in out.getvalue()


@pytest.mark.parametrize("text", ["Epoch 1/10", "Trial 0: val_auc 0.9 over 1 folds"])
def test_lines_outside_a_component_are_ignored(text):
    out = io.StringIO()
    shown = ComponentProgress(stream=out, spec=SPEC, live=False)
    shown.observe(text)
    assert out.getvalue() == ""


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_live_line_never_blocks_the_run():
    """rich's refresh thread asks for the status line while the run prints finished lines and reads the
    libraries' lines: neither waits on the other (it once deadlocked a real run)."""
    out = _Terminal()
    shown = ComponentProgress(stream=out, spec=SPEC, live=True)
    runs = []

    def busy() -> None:  # for 3 s: a dozen refreshes of the live line
        until = time.monotonic() + 3.0
        while time.monotonic() < until:
            shown.started("Trainer")
            for line in TRAINER:
                shown.observe(line)
            shown.finished("Trainer", 1.0, cached=False)
            runs.append(1)

    worker = threading.Thread(target=busy, daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "the progress display deadlocked"
    shown.close()
    assert out.getvalue().count("Trainer: finished (1.0s): 2 of 10 epochs, val_auc 0.9412") == len(runs)
