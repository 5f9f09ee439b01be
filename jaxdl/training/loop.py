"""``train_and_evaluate``: train a run (or a vectorized group of runs), select, and test.

The loop is host-side glue around two jitted pure functions (train and eval
steps); nothing here names a device, so the same code runs on CPU, GPU and
TPU. A lone run is a group of one, so there is one loop:

  build and check everything    (experiment.py: nothing on disk changes if it fails)
  lock and claim the run folders (claim.py, run_folder.py)
  resume from the checkpoints    (members.py: the checkpoint's history is the truth)
  per epoch: train, with periodic actions after each step (periodic.py: mid-epoch
    checkpoints, running logs); validate, record the row, checkpoint, maybe stop early
  test the selected checkpoint and the last one; write results.json (final_test.py)
"""

import pathlib
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxdl import data as data_lib
from jaxdl.errors import CheckpointError
from jaxdl.training.claim import claimed_folders
from jaxdl.training.evaluation import check_finite
from jaxdl.training.experiment import (Experiment, build_experiment, eval_batch_length,
                                       out_of_memory)
from jaxdl.training.feeding import GroupInput
from jaxdl.training.final_test import GroupEvaluator, test_and_write
from jaxdl.training.group import MemberGroup
from jaxdl.training.jitted import jit_predict_step, jit_steps
from jaxdl.training.members import EpochHook, Members
from jaxdl.training.metric_sums import from_json, merge
from jaxdl.training.parallel import DataParallel
from jaxdl.training.periodic import MidEpochCheckpoint, RunningLog, TrainClock
from jaxdl.training.progress import Reporter, format_row
from jaxdl.training.results import member_row
from jaxdl.training.resume import Progress
from jaxdl.training.run_folder import RunFolder, read_json
from jaxdl.training.signals import StopSignals
from jaxdl.tracking import open_writers

_merge = jax.jit(merge)


def _stderr(message: str) -> None:
  print(message, file=sys.stderr)


class GroupTrainer:
  """Trains, checkpoints, selects and tests a group of runs that share one program.

  Args:
    exps: one experiment per member (equal in everything that changes shapes or code).
    runs: one run folder per member (locked and started by ``train_group``).
    group: how the members are stacked.
    parallel: the device mesh.
    quiet: log lines instead of a progress bar.
    log: where messages go.
    epoch_hooks: per member, None or ``hook(history) -> stop`` (see ``Members``).
  """

  def __init__(self, exps: Sequence[Experiment], runs: Sequence[RunFolder], group: MemberGroup,
               parallel: DataParallel, quiet: bool, log: Callable[[str], None],
               epoch_hooks: Sequence[EpochHook | None] | None = None):
    self.exps, self.runs, self.group = list(exps), list(runs), group
    # Member 0's experiment: its model, optimizer, data and schedule are every member's.
    self.shared, self.config = exps[0], exps[0].config
    self.quiet = quiet or not runs[0].writer  # One process reports.
    self.members = Members(exps, runs, group, parallel, log, epoch_hooks)
    state = parallel.place_state(group.stack([e.initial_state for e in exps]))
    state_sharding = parallel.state_shardings(state)
    self.train_step, eval_step = jit_steps(self.shared, group, parallel, state_sharding)
    self.input = GroupInput(exps, group, parallel)
    self.evaluator = GroupEvaluator(
        group, eval_step, parallel.eval_batch_size(eval_batch_length(self.shared)), parallel,
        self.input.settings,
        lambda: jit_predict_step(self.shared, group, parallel, state_sharding))
    self.writers: list[list] = [[] for _ in runs]  # TensorBoard / W&B, opened by run().

  def run(self, wall_start: float) -> list[dict[str, Any]]:
    """Resumes, trains every member to its end, tests, and returns each member's results."""
    progress = self.members.resume()
    self.writers = [open_writers(exp.config, run.path, exp.steps_per_epoch) if run.writer else []
                    for exp, run in zip(self.exps, self.runs)]
    for run, history, writers in zip(self.runs, progress.histories, self.writers):
      run.write_metrics(history)  # The checkpoint's history is the truth on resume.
      for writer in writers:  # Rows the writers missed (a crash between checkpoint and copy).
        writer.rows(history)
    trained = self.train(progress)
    finished = [run.file("results.json") for run in self.runs]
    if not trained and all(path.exists() for path in finished):
      return [read_json(path) for path in finished]  # A finished run: nothing changes.
    return test_and_write(self.members, self.evaluator, self.runs, progress, wall_start)

  def train(self, progress: Progress) -> int:
    """Trains until every member is done; returns the steps this session took."""
    start_step = progress.step
    spe = self.shared.steps_per_epoch
    with Reporter(self.shared.total_steps, start_step, self.quiet,
                  self.config.batch_size * self.group.size) as reporter, StopSignals() as stop:
      if start_step:
        reporter.log(f"resuming {', '.join(self.members.names)} from step {start_step}")
      while active := self.members.active(progress):
        epoch = len(progress.histories[active[0]])
        if progress.step > (epoch + 1) * spe:
          raise CheckpointError(f"{self.members.names[active[0]]}: its checkpoint at step "
                                f"{progress.step} has {epoch} epochs of history; the run folder "
                                "is inconsistent: train it again with --overwrite")
        t_epoch = time.perf_counter()
        sums, counted_before = self.train_epoch(progress, epoch, stop, reporter)
        self.end_epoch(progress, epoch, sums, counted_before, time.perf_counter() - t_epoch,
                       reporter)
        if stop.received:
          raise stop.preempted(progress.step)
    return progress.step - start_step

  def train_epoch(self, progress: Progress, epoch: int, stop: StopSignals,
                  reporter: Reporter) -> tuple[Any, float]:
    """Trains the rest of ``epoch``; returns its metric sums and the examples they held before.

    After each step the periodic actions run: a checkpoint every ``checkpoint_every_steps``
    (and on a stop signal), the running means every ``log.every_steps``.
    """
    spe = self.shared.steps_per_epoch
    start_batch = progress.step - epoch * spe  # > 0 when resuming mid-epoch.
    sums = self._restored_sums(progress, start_batch)
    # Examples (all members) counted before this session: restored with the epoch's sums.
    before = sum(s["count"] for s in progress.partial_sums) if start_batch else 0.0
    clock = TrainClock()
    checkpoint = MidEpochCheckpoint(self.config.checkpoint_every_steps, spe, stop, clock,
                                    self._save_partial)
    running_log = RunningLog(self.config.log.every_steps, self.writers, self.group,
                             self.members.active)
    length = self.shared.privacy["padded_batch"] if self.shared.privacy else self.shared.batch_length
    for batch in self.input.stream(self.input.epoch_plan(epoch), start_batch, spe, length,
                                   self.group.vectorized):
      t_step = time.perf_counter()
      progress.state, step_sums = self.train_step(progress.state, batch)
      if progress.compile_s is None:
        # Dispatch is asynchronous: wait, so the first step's time includes the compile.
        jax.block_until_ready(progress.state.step)
        progress.compile_s = time.perf_counter() - t_step
      sums = step_sums if sums is None else _merge(sums, step_sums)
      progress.step += 1
      checkpoint(progress.step, progress, sums)
      self._advance(reporter, progress.step, sums)
      running_log(progress.step, progress, sums)
    clock.stop(progress)
    return sums, before

  def _restored_sums(self, progress: Progress, start_batch: int) -> Any:
    """The metric sums of the epoch's steps before ``start_batch`` (None at its start)."""
    if not start_batch:
      return None
    if progress.partial_sums is None:
      raise CheckpointError(f"{self.members.names[0]}: the checkpoint at step {progress.step} "
                            "has no metric sums of its unfinished epoch; the run folder is "
                            "inconsistent: train it again with --overwrite")
    return self.group.stack([from_json(s) for s in progress.partial_sums])

  def _save_partial(self, progress: Progress, sums: Any) -> None:
    host = self.group.host_sums(sums)
    self._check_finite(progress, host)
    progress.partial_sums = host
    self.members.save(progress, epoch_end=False)

  def _check_finite(self, progress: Progress, host_sums: list[dict[str, float]]) -> None:
    if self.config.nonfinite != "stop":
      return
    active = self.members.active(progress)
    check_finite([host_sums[i] for i in active], [self.members.names[i] for i in active],
                 progress.saved_step)

  def _advance(self, reporter: Reporter, step: int, sums: Any) -> None:
    if not reporter.wants_live_metrics():
      reporter.advance(step)
      return
    live = self.group.means(sums)
    reporter.advance(step, {k: float(np.mean([m[k] for m in live])) for k in live[0]})

  def end_epoch(self, progress: Progress, epoch: int, sums: Any, counted_before: float,
                seconds: float, reporter: Reporter) -> None:
    """Validates, appends each unfinished member's row, checkpoints, and writes metrics.jsonl.

    ``counted_before``: examples in ``sums`` from an earlier session (resumed mid-epoch),
    left out of this session's throughput.
    """
    host = self.group.host_sums(sums)
    examples = int(sum(h["count"] for h in host) - counted_before)
    self._check_finite(progress, host)
    active = self.members.active(progress)
    vals = self.evaluator.means(progress.state, self.shared.datasets.val)
    for i in active:
      progress.histories[i].append(member_row(epoch + 1, progress.step, host[i], vals[i],
                                              examples, seconds, self.exps[i].privacy))
      self.members.call_hook(i, progress.histories[i])
    progress.partial_sums = None
    # The checkpoint first, then metrics.jsonl: a row on disk is always in a checkpoint.
    self.members.save(progress, epoch_end=True)
    for i in active:
      self._record_row(i, progress.histories[i], reporter)

  def _record_row(self, member: int, history: list[dict[str, Any]], reporter: Reporter) -> None:
    self.runs[member].write_metrics(history)
    for writer in self.writers[member]:  # Copies for TensorBoard / W&B, after the truth.
      writer.rows(history)
    prefix = f"{self.runs[member].path.name}: " if self.group.size > 1 else ""
    stopped = (" (stopped by its hook)" if self.members.stopped[member] else " (early stop)"
               if self.shared.selection.should_stop(history) else "")
    reporter.log(prefix + format_row(history[-1]) + stopped)

  def close(self) -> None:
    self.members.close()
    for writer in (w for writers in self.writers for w in writers):
      writer.close()


def train_group(configs: Sequence[ml_collections.ConfigDict],
                workdirs: Sequence[str | pathlib.Path], *, vectorized: bool,
                quiet: bool = False, overwrite: bool = False, command: Sequence[str] = (),
                datasets: data_lib.Datasets | None = None,
                log: Callable[[str], None] = _stderr,
                epoch_hooks: Sequence[EpochHook | None] | None = None) -> list[dict[str, Any]]:
  """Trains runs that differ only in values (seed, learning rate, ...) as one program.

  With ``vectorized``, the members' states are stacked on a leading axis and one
  ``jax.vmap``-ed step trains them all; each keeps its own init key, data
  order and optimizer hyperparameters (which live in its optimizer state), and
  each writes its own run folder, exactly as a lone run would.

  Args:
    configs: one config per member, equal in everything that changes shapes or code.
    workdirs: one run folder per member.
    vectorized: train with vmap (required for more than one member).
    quiet: log lines instead of a progress bar.
    overwrite: delete what jaxdl wrote in the run folders first (after every check).
    command: the command line, for provenance.json.
    datasets: the data, if already built from ``configs[0].data``.
    log: where messages go.
    epoch_hooks: per member, ``hook(history) -> stop`` after each epoch (see ``Members``).

  Returns:
    Each member's results (also written to its ``results.json``).
  """
  wall_start = time.perf_counter()
  group = MemberGroup(len(configs), vectorized)
  # Every check first: a refused run leaves its folder as it was.
  first = build_experiment(configs[0], datasets)
  exps = [first] + [build_experiment(c, first.datasets) for c in configs[1:]]
  parallel = DataParallel.over_all_devices(stacked=vectorized,
                                           model_axis=first.config.parallel.model_axis)
  parallel.check_batch_size(first.config.batch_size)
  if jax.process_index() == 0:
    for change in first.datasets.spec.changes:  # Examples the data left out or changed.
      log(f"data: {change}")
  runs = [RunFolder(w) for w in workdirs]
  with claimed_folders(runs, exps, overwrite, command, log):
    trainer = GroupTrainer(exps, runs, group, parallel, quiet, log, epoch_hooks)
    try:
      return trainer.run(wall_start)
    except jax.errors.JaxRuntimeError as e:
      if "RESOURCE_EXHAUSTED" not in str(e) and "out of memory" not in str(e).lower():
        raise
      raise out_of_memory(e, first, group.size) from e
    finally:
      trainer.close()


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, *,
                       quiet: bool = False, overwrite: bool = False,
                       command: Sequence[str] = (), datasets: data_lib.Datasets | None = None
                       ) -> dict[str, Any]:
  """Trains ``config`` in ``workdir`` (resuming from its last checkpoint) and tests it.

  Returns:
    The results written to ``workdir/results.json``.
  """
  return train_group([config], [workdir], vectorized=False, quiet=quiet, overwrite=overwrite,
                     command=command, datasets=datasets)[0]


