"""TensorBoard event files and W&B runs: copies of metrics.jsonl, written once, read back."""

import importlib.util
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest
from tensorboard.backend.event_processing import event_accumulator

from conftest import Crash, crash_at_batch, experiment
from jaxdl.training import train_and_evaluate, train_group

QUICK = ("num_epochs=3", "batch_size=256", "data.augment_shift=0")


class _Events:
  """The scalars of an event-file folder, read with TensorBoard's own reader."""

  def __init__(self, folder):
    self.reader = event_accumulator.EventAccumulator(str(folder), size_guidance={"scalars": 0})
    self.reader.Reload()

  def scalars(self, tag):
    """``[(step, value)]`` of a tag among the reader's scalars."""
    assert tag in self.reader.Tags()["scalars"], (tag, self.reader.Tags())
    return [(e.step, e.value) for e in self.reader.Scalars(tag)]


def _events(folder):
  return _Events(folder)


def _rows(run):
  return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_tensorboard_gets_every_row_once_and_the_hparams(tmp_path, monkeypatch):
  run = tmp_path / "run"
  cfg = experiment("seed_cnn_digits", *QUICK, "checkpoint_every_steps=2", "log.every_steps=2")
  with monkeypatch.context() as patch:
    crash_at_batch(patch, 9)  # Dies in epoch 2, after a mid-epoch checkpoint.
    with pytest.raises(Crash):
      train_and_evaluate(cfg, run, quiet=True)
  train_and_evaluate(cfg, run, quiet=True)
  events = _events(run / "tb")
  rows = _rows(run)
  for tag, key in (("train/loss", "train_loss"), ("val/accuracy", "val_accuracy")):
    scalars = events.scalars(tag)
    assert [s for s, _ in scalars] == [r["step"] for r in rows]  # Once each, resume or not.
    assert [v for _, v in scalars] == pytest.approx([r[key] for r in rows], rel=1e-6)
  assert [s for s, _ in events.scalars("train_running/loss")][:2] == [2, 4]
  metadata = events.reader.summary_metadata
  assert "_hparams_/session_start_info" in metadata
  plugin = metadata["_hparams_/session_start_info"].plugin_data
  assert plugin.plugin_name == "hparams" and b"optim.learning_rate" in plugin.content


@pytest.mark.slow
def test_a_vectorized_sweeps_members_are_separate_tensorboard_runs(tmp_path):
  configs = [experiment("seed_cnn_digits", *QUICK, "num_epochs=1", f"seed={s}") for s in (0, 1)]
  train_group(configs, [tmp_path / "m0", tmp_path / "m1"], vectorized=True, quiet=True)
  losses = [_events(tmp_path / m / "tb").scalars("train/loss")[0][1] for m in ("m0", "m1")]
  assert losses == pytest.approx([_rows(tmp_path / m)[0]["train_loss"] for m in ("m0", "m1")])
  assert losses[0] != losses[1]


def test_tensorboard_can_be_turned_off(tmp_path):
  train_and_evaluate(experiment("seed_cnn_digits", *QUICK, "num_epochs=1",
                                "log.tensorboard=false"), tmp_path, quiet=True)
  assert not (tmp_path / "tb").exists()


def test_weights_and_biases_offline_continues_the_same_run(tmp_path, monkeypatch):
  wandb = pytest.importorskip("wandb")
  monkeypatch.setenv("WANDB_MODE", "offline")
  monkeypatch.setenv("WANDB_SILENT", "true")
  cfg = experiment("seed_cnn_digits", *QUICK, "num_epochs=1", "log.wandb=true",
                   "log.wandb_group=mine", "log.tensorboard=false")
  train_and_evaluate(cfg, tmp_path / "run", quiet=True)
  run_id = (tmp_path / "run" / "wandb_id.txt").read_text()
  offline = list((tmp_path / "run" / "wandb").glob(f"offline-run-*-{run_id}"))
  assert len(offline) == 1 and any(offline[0].glob("*.wandb"))
  del wandb


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                    reason="TensorFlow is not installed, so nothing could import it")
def test_event_files_are_written_without_loading_tensorflow(tmp_path):
  # tensorboard's own writers import TensorFlow whenever it is installed; jaxdl's must not.
  code = ("import sys; from jaxdl.tracking import TensorBoardWriter; "
          f"w = TensorBoardWriter(__import__('pathlib').Path({str(tmp_path)!r}), {{'seed': 0}}); "
          "w.rows([{'epoch': 1, 'step': 5, 'train_loss': 0.5}]); w.close(); "
          "print('tensorflow' in sys.modules)")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip() == "False"
  assert _Events(tmp_path).scalars("train/loss") == [(5, pytest.approx(0.5))]


def test_a_kill_while_the_logged_marker_is_written_leaves_the_old_one(tmp_path, monkeypatch):
  """The marker of rows already in TensorBoard is replaced atomically (a kill -9 had left it
  empty, and resuming the run then failed)."""
  import os

  from jaxdl.tracking import TensorBoardWriter

  writer = TensorBoardWriter(tmp_path, {"seed": 0})
  writer.rows([{"epoch": 1, "step": 10, "train_loss": 1.0}])

  def killed(src, dst):
    raise KeyboardInterrupt  # The process dies before the rename.
  monkeypatch.setattr(os, "replace", killed)
  with pytest.raises(KeyboardInterrupt):
    writer.rows([{"epoch": 2, "step": 20, "train_loss": 0.5}])
  writer.close()
  assert json.loads((tmp_path / "logged.json").read_text()) == {"epoch": 1}
  monkeypatch.undo()
  resumed = TensorBoardWriter(tmp_path, {"seed": 0})
  resumed.close()
  assert resumed._last == 1  # Resuming reads it.


def test_tensorboard_scalars_are_scalars_with_an_epoch_axis_and_the_learning_rate(tmp_path):
  """EventAccumulator lists them under Tags()['scalars'] (tensor summaries it did not); each
  row brings its epoch and the learning rate of the update that made its step."""
  from jaxdl.tracking import TensorBoardWriter

  writer = TensorBoardWriter(tmp_path, {"seed": 0}, learning_rate=lambda step: 0.5 / step)
  writer.rows([{"epoch": 1, "step": 4, "train_loss": 2.0, "val_accuracy": 0.5},
               {"epoch": 2, "step": 8, "train_loss": 1.0, "val_accuracy": 0.75}])
  writer.running(6, {"loss": 1.5})
  writer.close()
  events = _events(tmp_path)
  assert {"train/loss", "val/accuracy", "epoch", "train/learning_rate",
          "train_running/learning_rate"} <= set(events.reader.Tags()["scalars"])
  assert events.scalars("epoch") == [(4, 1.0), (8, 2.0)]
  rates = events.scalars("train/learning_rate")
  assert [s for s, _ in rates] == [4, 8] and [v for _, v in rates] == pytest.approx([0.125, 0.0625])
  (running,) = events.scalars("train_running/learning_rate")
  assert running[0] == 6 and running[1] == pytest.approx(0.5 / 6)


@pytest.mark.parametrize("schedule", ["constant", "cosine", "warmup_cosine"])
def test_the_logged_learning_rate_is_the_optimizers(schedule):
  """learning_rates(step) against the rate SGD actually applied at each update."""
  from jaxdl.optim import build_optimizer
  from jaxdl.tracking import learning_rates

  cfg = experiment("seed_cnn_digits", "optim.name=sgd", "optim.momentum=0.0",
                   "optim.learning_rate=0.2", f"optim.schedule={schedule}",
                   "optim.warmup_epochs=1", "num_epochs=3").optim
  tx, rate = build_optimizer(cfg, 12, 4), learning_rates(cfg, 4, 3)
  params = {"w": jnp.zeros(())}
  state = tx.init(params)
  with jax.numpy_dtype_promotion("standard"):
    for step in range(1, 13):
      updates, state = tx.update({"w": jnp.ones(())}, state, params)
      assert -float(updates["w"]) == pytest.approx(rate(step), rel=1e-5, abs=1e-8), step
