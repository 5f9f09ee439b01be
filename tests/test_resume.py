"""Every interruption point resumes to the files of an uninterrupted run.

The config makes every epoch end on a checkpoint step (1,295 examples in
batches of 37 = 35 steps, checkpoints every 35 steps): the case where an
epoch's row was once lost. Each test interrupts one run at one point, reruns
it, and compares its metrics.jsonl and results.json with an uninterrupted
run's, field by field (wall-clock fields aside).
"""

import json
import os
import signal
import subprocess
import sys

import chex
import pytest

from conftest import EXPERIMENTS, ROOT, Crash, comparable_files, crash_at_batch, experiment
from jaxdl.configs import apply_overrides
from jaxdl.errors import Preempted
from jaxdl.training import evaluation, load_run, train_and_evaluate
from jaxdl.training import final_test as evaluating_module
from jaxdl.training.checkpoint import Checkpointer
from jaxdl.training.run_folder import RunFolder

STEPS_PER_EPOCH = 35
OVERRIDES = ("num_epochs=3", "batch_size=37", "checkpoint_every_steps=35",
             "checkpoints_to_keep=1")


def _config():
  return experiment("seed_cnn_digits", *OVERRIDES)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("uninterrupted")
  train_and_evaluate(_config(), workdir, quiet=True)
  return workdir


def _crash_on_call(monkeypatch, owner, name, n):
  """Makes the ``n``-th call of ``owner.name`` crash before it does anything."""
  real = getattr(owner, name)
  calls = {"n": 0}

  def wrapper(*args, **kwargs):
    calls["n"] += 1
    if calls["n"] == n:
      raise Crash
    return real(*args, **kwargs)

  monkeypatch.setattr(owner, name, wrapper)
  return calls


INTERRUPTIONS = {
    # Mid-epoch 3, after the step-70 checkpoint.
    "mid_epoch": lambda mp: crash_at_batch(mp, 2 * STEPS_PER_EPOCH + 10),
    # After epoch 2's last step, before its validation (its checkpoint step is not yet written).
    "before_the_epoch_end_evaluation": lambda mp: _crash_on_call(
        mp, evaluating_module, "evaluate_group", 2),
    # Epoch 2's checkpoint is written, its metrics.jsonl row is not.
    "between_checkpoint_and_metrics": lambda mp: _crash_on_call(
        mp, RunFolder, "write_metrics", 3),  # The 1st call rewrites the (empty) history.
    # Orbax committed epoch 2's checkpoint; its checksums were not written.
    "mid_checkpoint": lambda mp: _crash_on_call(mp, Checkpointer, "_write_checksums", 2),
    # Epoch 2's checkpoint is being written: orbax's temporary folder is left behind.
    "during_checkpoint_write": lambda mp: _crash_writing_checkpoint(mp, 2),
    # Every epoch is done; results.json is not written yet.
    "before_results": lambda mp: _crash_on_call(mp, evaluating_module, "run_results", 1),
}


def _crash_writing_checkpoint(monkeypatch, n):
  real = Checkpointer.save
  calls = {"n": 0}

  def save(self, state, *args, **kwargs):
    calls["n"] += 1
    if calls["n"] == n:
      partial = self.directory / f"{int(state.step)}.orbax-checkpoint-tmp-1234"
      (partial / "state").mkdir(parents=True)
      (partial / "state" / "half_written").write_bytes(b"\0" * 100)
      raise Crash
    return real(self, state, *args, **kwargs)

  monkeypatch.setattr(Checkpointer, "save", save)
  return calls


# Two points run in the quick suite; every point runs with the slow tests.
QUICK_POINTS = ("between_checkpoint_and_metrics", "mid_epoch")


@pytest.mark.parametrize("point", [p if p in QUICK_POINTS else pytest.param(p, marks=pytest.mark.slow)
                                   for p in sorted(INTERRUPTIONS)])
def test_an_interrupted_run_resumes_to_the_samecomparable_files(tmp_path, monkeypatch, reference, point):
  with monkeypatch.context() as patch:
    calls = INTERRUPTIONS[point](patch)
    try:
      train_and_evaluate(_config(), tmp_path, quiet=True)
    except Crash:
      pass
  assert calls["n"] >= 1, "the interruption never happened"
  train_and_evaluate(_config(), tmp_path, quiet=True)
  assert comparable_files(tmp_path) == comparable_files(reference)
  _, resumed, _ = load_run(tmp_path)
  _, whole, _ = load_run(reference)
  chex.assert_trees_all_equal(resumed, whole)


@pytest.mark.slow
def test_a_stop_signal_at_an_epochs_last_step_keeps_its_row(tmp_path, monkeypatch, reference):
  # SIGTERM arrives while the last step of epoch 2 runs: the run finishes the
  # epoch (validation, row, checkpoint), then stops with Preempted.
  with monkeypatch.context() as patch:
    seen = crash_at_batch(patch, 2 * STEPS_PER_EPOCH,
                           lambda: os.kill(os.getpid(), signal.SIGTERM))
    with pytest.raises(Preempted, match=f"at step {2 * STEPS_PER_EPOCH}"):
      train_and_evaluate(_config(), tmp_path, quiet=True)
  assert seen["n"] == 2 * STEPS_PER_EPOCH
  rows = (tmp_path / "metrics.jsonl").read_text().splitlines()
  assert [json.loads(r)["epoch"] for r in rows] == [1, 2]
  train_and_evaluate(_config(), tmp_path, quiet=True)
  assert comparable_files(tmp_path) == comparable_files(reference)


_DIE_BEFORE_RESULTS = """
import os, signal, sys
from jaxdl import cli
from jaxdl.training import final_test
final_test.run_results = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_process_killed_after_its_last_checkpoint_resumes_to_the_same_results(
    tmp_path, native_kernels_on):
  """SIGKILL between the last checkpoint and results.json (1 in 4 random kills landed
  there): the resumed results.json holds every field of an uninterrupted run's, timing and
  the kernels the training sessions loaded included (they were 0.0, None and [])."""
  argv = ["train", str(EXPERIMENTS / "seed_cnn_digits.py"), "--quiet",
          *(f"--config.{o}" for o in OVERRIDES)]
  run = lambda workdir, *python: subprocess.run(
      [sys.executable, *python, *argv, "--workdir", str(workdir)], cwd=ROOT,
      capture_output=True, text=True, timeout=600)
  killed = run(tmp_path / "killed", "-c", _DIE_BEFORE_RESULTS)
  assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
  assert not (tmp_path / "killed" / "results.json").exists()
  assert (tmp_path / "killed" / "metrics.jsonl").read_text().count("\n") == 3
  for workdir in ("killed", "whole"):
    done = run(tmp_path / workdir, "-m", "jaxdl.cli")
    assert done.returncode == 0, done.stderr[-2000:]
  assert comparable_files(tmp_path / "killed") == comparable_files(tmp_path / "whole")
  results = json.loads((tmp_path / "killed" / "results.json").read_text())
  assert results["native_kernels"] and results["examples_per_s"] > 0


def test_rerunning_a_finished_run_changes_no_result(tmp_path, reference):
  workdir = tmp_path / "run"
  train_and_evaluate(_config(), workdir, quiet=True)
  before = {name: (workdir / name).read_bytes() for name in ("metrics.jsonl", "results.json")}
  train_and_evaluate(_config(), workdir, quiet=True)
  after = {name: (workdir / name).read_bytes() for name in ("metrics.jsonl", "results.json")}
  assert before == after
  assert "compile_s" in json.loads(after["results.json"])


def test_a_resumed_run_evaluates_as_often_as_an_uninterrupted_one(tmp_path, monkeypatch):
  # Resuming replays nothing it had finished: one validation per epoch in all.
  calls = {"n": 0}
  real = evaluation.evaluate_group

  def counting(*args, **kwargs):
    calls["n"] += 1
    return real(*args, **kwargs)

  with monkeypatch.context() as patch:
    crash_at_batch(patch, 2 * STEPS_PER_EPOCH + 10)
    patch.setattr(evaluating_module, "evaluate_group", counting)
    with pytest.raises(Crash):
      train_and_evaluate(_config(), tmp_path, quiet=True)
    assert calls["n"] == 2  # Epochs 1 and 2.
  monkeypatch.setattr(evaluating_module, "evaluate_group", counting)
  results = train_and_evaluate(_config(), tmp_path, quiet=True)
  tests = 1 if results["selected_epoch"] == results["last_epoch"] else 2
  assert calls["n"] == 2 + 1 + tests  # Epoch 3's validation, then the test split.


@pytest.mark.slow
def test_a_run_with_worker_processes_resumes_bitwise(tmp_path, monkeypatch, reference):
  # Batches computed in Grain worker processes: killed mid-epoch with one worker, resumed
  # with two, the files and state equal the in-process uninterrupted run's.
  workers = lambda n: apply_overrides(_config(), (f"data.workers={n}",))
  with monkeypatch.context() as patch:
    seen = crash_at_batch(patch, 2 * STEPS_PER_EPOCH + 10)
    with pytest.raises(Crash):
      train_and_evaluate(workers(1), tmp_path, quiet=True)
  assert seen["n"] == 2 * STEPS_PER_EPOCH + 10
  train_and_evaluate(workers(2), tmp_path, quiet=True, overwrite=False)
  assert comparable_files(tmp_path) == comparable_files(reference)
  chex.assert_trees_all_equal(load_run(tmp_path)[1], load_run(reference)[1])


@pytest.mark.slow  # Three trainings each.
@pytest.mark.parametrize("kill_first", [False, True])
def test_more_epochs_on_a_finished_run_continue_it_as_a_longer_run(tmp_path, monkeypatch,
                                                                   kill_first):
  """num_epochs raised alone, with a constant learning rate: the run goes on from its last
  epoch and ends bitwise as a run started with the larger number (also when the continuation
  is killed and resumed); it used to refuse the folder as a different config."""
  constant = ("optim.schedule=constant",)
  longer = tmp_path / "longer"
  train_and_evaluate(experiment("seed_cnn_digits", *OVERRIDES, *constant), longer, quiet=True)
  grown = tmp_path / "grown"
  two = apply_overrides(_config(), ["num_epochs=2", *constant])
  train_and_evaluate(two, grown, quiet=True)
  first_rows = (grown / "metrics.jsonl").read_text()
  three = apply_overrides(two, ["num_epochs=3"])
  if kill_first:
    with monkeypatch.context() as patch:
      crash_at_batch(patch, 10)  # In the added epoch.
      with pytest.raises(Crash):
        train_and_evaluate(three, grown, quiet=True)
  train_and_evaluate(three, grown, quiet=True)
  assert comparable_files(grown) == comparable_files(longer)
  assert json.loads((grown / "config.json").read_text())["num_epochs"] == 3
  # Continued, not retrained: the first two rows are the old ones, wall-clock times included.
  assert (grown / "metrics.jsonl").read_text().startswith(first_rows)


@pytest.mark.parametrize("first, then, message", [
    (("optim.schedule=cosine",), (), "optim.schedule=cosine spreads over all num_epochs"),
    (("optim.schedule=constant", "num_epochs=3"), ("num_epochs=2",),
     "it trained for num_epochs=3; a run of fewer epochs is a new run")])
def test_more_epochs_where_the_run_would_differ_say_exactly_why(tmp_path, first, then, message):
  from jaxdl.errors import CheckpointError

  config = apply_overrides(_config(), ["num_epochs=2", *first])
  train_and_evaluate(config, tmp_path, quiet=True)
  grown = apply_overrides(config, list(then) or ["num_epochs=3"])
  with pytest.raises(CheckpointError, match=message):
    train_and_evaluate(grown, tmp_path, quiet=True)
