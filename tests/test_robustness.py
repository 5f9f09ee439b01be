"""Preemption, kill -9, non-finite losses, and the bad-input table: no work is lost."""

import json
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import EXPERIMENTS, ROOT, comparable_files, experiment
from jaxdl import cli
from jaxdl.errors import CheckpointError, DataError, NonFiniteError
from jaxdl.training import load_run, train_and_evaluate
from jaxdl.training import feeding as feeding_module

DIGITS = str(EXPERIMENTS / "seed_cnn_digits.py")
# 35 steps an epoch; checkpoints every 5 steps, so each epoch ends on a checkpoint step.
SMALL = ["--config.num_epochs=3", "--config.batch_size=37", "--config.checkpoint_every_steps=5"]


def _train_process(workdir: pathlib.Path) -> subprocess.Popen:
  return subprocess.Popen([sys.executable, "-m", "jaxdl.cli", "train", DIGITS, "--workdir",
                           str(workdir), "--quiet", *SMALL], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, process, timeout=120.0):
  end = time.monotonic() + timeout
  while time.monotonic() < end:
    if predicate():
      return True
    if process.poll() is not None:
      return False
    time.sleep(0.002)
  raise TimeoutError


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """An uninterrupted run of the same config, in a process of its own."""
  workdir = tmp_path_factory.mktemp("reference")
  process = _train_process(workdir)
  _, err = process.communicate(timeout=300)
  assert process.returncode == 0, err
  _, state, _ = load_run(workdir)
  return state, comparable_files(workdir)


def _finish_and_compare(workdir, reference):
  process = _train_process(workdir)
  _, err = process.communicate(timeout=300)
  assert process.returncode == 0, err
  _, state, _ = load_run(workdir)
  chex.assert_trees_all_equal(state, reference[0])
  assert comparable_files(workdir) == reference[1]


@pytest.mark.slow
def test_sigterm_checkpoints_exits_75_and_resumes(tmp_path, reference):
  process = _train_process(tmp_path)
  metrics = tmp_path / "metrics.jsonl"
  assert _wait_for(lambda: metrics.exists() and metrics.read_text().count("\n") >= 1, process)
  process.send_signal(signal.SIGTERM)
  _, err = process.communicate(timeout=120)
  assert process.returncode == cli.EXIT_PREEMPTED, err
  assert "stopped by SIGTERM" in err
  assert any(p.name.isdigit() for p in (tmp_path / "checkpoints").iterdir())
  _finish_and_compare(tmp_path, reference)


def _checkpoint_writing(folder: pathlib.Path) -> bool:
  ckpts = folder / "checkpoints"
  return ckpts.exists() and any("tmp" in p.name for p in ckpts.iterdir())


def _rows(metrics: pathlib.Path) -> int:
  return metrics.read_text().count("\n") if metrics.exists() else 0


def _epoch_end_checkpoint(folder: pathlib.Path, epoch: int) -> bool:
  step = folder / "checkpoints" / str(35 * epoch)
  return step.is_dir() and not _checkpoint_writing(folder)


@pytest.mark.slow
@pytest.mark.parametrize("kill_when", ["during_first_write", "after_epoch_1",
                                       "epoch_end_checkpoint_before_its_row_is_read",
                                       "late_during_a_write"])
def test_kill_9_at_any_moment_loses_no_completed_checkpoint(tmp_path, reference, kill_when):
  metrics = tmp_path / "metrics.jsonl"
  condition = {
      "during_first_write": lambda: _checkpoint_writing(tmp_path),
      "after_epoch_1": lambda: _rows(metrics) >= 1,
      "epoch_end_checkpoint_before_its_row_is_read": lambda: _epoch_end_checkpoint(tmp_path, 2),
      "late_during_a_write": lambda: _rows(metrics) >= 2 and _checkpoint_writing(tmp_path),
  }[kill_when]
  for _ in range(3):  # The moment may pass between two polls; try a fresh run again.
    shutil.rmtree(tmp_path, ignore_errors=True)
    process = _train_process(tmp_path)
    if _wait_for(condition, process):
      process.send_signal(signal.SIGKILL)
      process.communicate(timeout=120)
      break
    process.communicate(timeout=120)
  assert process.returncode == -signal.SIGKILL, "the kill never happened"
  _finish_and_compare(tmp_path, reference)


def _poison_batches(monkeypatch, at_batch: int):
  """Makes the loop's ``at_batch``-th training batch (host side, before placing) all NaN."""
  real = feeding_module.stream_batches
  seen = {"n": 0}

  def poisoned(plan, *args, **kwargs):
    def poisoned_plan(step):
      batch = plan(step)
      seen["n"] += 1
      if seen["n"] == at_batch:
        batch = {**batch, "inputs": batch["inputs"] * np.nan}
      return batch

    return real(poisoned_plan, *args, **kwargs)

  monkeypatch.setattr(feeding_module, "stream_batches", poisoned)
  return seen


def test_a_nan_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
  _poison_batches(monkeypatch, at_batch=6)
  cfg = experiment("seed_cnn_digits", "num_epochs=1", "batch_size=64", "checkpoint_every_steps=4")
  with pytest.raises(NonFiniteError, match=r"non-finite loss at step 6; the last good "
                     r"checkpoint \(step 4\) is kept"):
    train_and_evaluate(cfg, tmp_path, quiet=True)
  _, state, _ = load_run(tmp_path)
  assert int(state.step) == 4
  assert all(bool(jnp.all(jnp.isfinite(p))) for p in jax.tree_util.tree_leaves(state.params))


def test_nonfinite_skip_leaves_the_state_unchanged_and_goes_on(tmp_path, monkeypatch):
  _poison_batches(monkeypatch, at_batch=6)
  cfg = experiment("seed_cnn_digits", "num_epochs=1", "batch_size=64", "nonfinite=skip")
  results = train_and_evaluate(cfg, tmp_path, quiet=True)
  row = json.loads((tmp_path / "metrics.jsonl").read_text())
  assert row["skipped_steps"] == 1 and np.isfinite(row["train_loss"])
  assert results["steps"] == 21 and np.isfinite(results["test_loss"])


def test_bad_nonfinite_policy_is_a_config_error(tmp_path):
  with pytest.raises(Exception, match="nonfinite must be one of stop, skip"):
    train_and_evaluate(experiment("seed_cnn_digits", "nonfinite=ignore"), tmp_path, quiet=True)


def test_a_checkpoint_from_a_different_model_is_refused(tmp_path):
  train_and_evaluate(experiment("seed_cnn_digits", "num_epochs=1", "batch_size=256"),
                     tmp_path / "cnn", quiet=True)
  other = experiment("seed_cnn_digits", "num_epochs=1", "batch_size=256", "model.name=deep_cnn",
                     "model.widths=(8,)")
  (tmp_path / "deep").mkdir()
  (tmp_path / "deep" / "config.json").write_text(json.dumps(json.loads(other.to_json())))
  shutil.copytree(tmp_path / "cnn" / "checkpoints", tmp_path / "deep" / "checkpoints")
  with pytest.raises(CheckpointError, match="cannot be restored into this model"):
    load_run(tmp_path / "deep")


def test_an_empty_split_is_a_clear_error(tmp_path):
  from jaxdl import data

  with pytest.raises(DataError, match="the test split is empty .*; raise data.test_fraction"):
    data.build(experiment("seed_cnn_digits", "data.test_fraction=0.0").data)


def test_resume_keeps_the_run_folder_intact_after_a_rejected_override(tmp_path, capsys):
  workdir = tmp_path / "run"
  assert cli.main(["train", DIGITS, "--workdir", str(workdir), "--quiet",
                   "--config.num_epochs=1", "--config.batch_size=256"]) == 0
  before = {p.name: p.read_bytes() for p in workdir.iterdir() if p.is_file()}
  code = cli.main(["train", DIGITS, "--workdir", str(workdir), "--quiet",
                   "--config.num_epochs=1", "--config.batch_size=128"])
  assert code == 2 and "different config (batch_size: 256 -> 128)" in capsys.readouterr().err
  after = {p.name: p.read_bytes() for p in workdir.iterdir() if p.is_file()}
  assert before == after


def test_same_config_and_seed_give_bitwise_identical_runs(tmp_path):
  cfg = experiment("seed_cnn_digits", "num_epochs=1", "batch_size=128")
  a = train_and_evaluate(cfg, tmp_path / "a", quiet=True)
  b = train_and_evaluate(cfg, tmp_path / "b", quiet=True)
  _, state_a, _ = load_run(tmp_path / "a")
  _, state_b, _ = load_run(tmp_path / "b")
  chex.assert_trees_all_equal(state_a, state_b)
  assert a["test_loss"] == b["test_loss"] and a["train_loss"] == b["train_loss"]
