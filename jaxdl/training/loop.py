"""``train_and_evaluate``: train a run (or a vectorized group of runs), select, and test.

The loop is host-side glue around two jitted pure functions (train and eval
steps); nothing here names a device, so the same code runs on CPU, GPU and
TPU. A lone run is a group of one, so there is one loop:

  build and check everything   (experiment.py: nothing on disk changes if it fails)
  lock and claim the run folder (run_folder.py, folder_lock.py)
  resume from the checkpoints   (the checkpoint's history is the truth)
  per epoch: train, validate, record the row, checkpoint, maybe stop early
  test the selected checkpoint and the last one; write results.json
"""

import contextlib
import pathlib
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxdl import models
from jaxdl import data as data_lib
from jaxdl.models.native import build as native_build
from jaxdl.configs.loading import config_to_dict
from jaxdl.errors import CheckpointError, JaxdlError
from jaxdl.training.checkpoint import Checkpointer
from jaxdl.training.evaluation import check_finite, epoch_row, evaluate_group, predict_group
from jaxdl.training.experiment import Experiment, build_experiment, eval_batch_length
from jaxdl.training.feeding import GroupInput
from jaxdl.training.group import MemberGroup
from jaxdl.training.jitted import jit_predict_step, jit_steps
from jaxdl.training.metric_sums import from_json, means, merge
from jaxdl.training.parallel import DataParallel
from jaxdl.training.progress import Reporter, format_row
from jaxdl.training.results import epsilon_spent, run_results
from jaxdl.training.resume import (Progress, good_steps, restore_members, resume_point,
                                   resumed_progress)
from jaxdl.training.run_folder import PREDICTIONS, RunFolder, read_json
from jaxdl.training.signals import StopSignals
from jaxdl.tracking import open_writers
from jaxdl.training import user_code

_merge = jax.jit(merge)


def _stderr(message: str) -> None:
  print(message, file=sys.stderr)


EpochHook = Callable[[Sequence[dict[str, Any]]], bool]


class GroupTrainer:
  """Trains, checkpoints, selects and tests a group of runs that share one program.

  Args:
    exps: one experiment per member (equal in everything that changes shapes or code).
    runs: one run folder per member (locked and started by ``train_group``).
    group: how the members are stacked.
    parallel: the device mesh.
    quiet: log lines instead of a progress bar.
    log: where messages go.
    epoch_hooks: per member, None or ``hook(history) -> stop``, called once with each new
      row (and with the restored history on resume); True stops that member (a search
      pruning a trial).
  """

  def __init__(self, exps: Sequence[Experiment], runs: Sequence[RunFolder], group: MemberGroup,
               parallel: DataParallel, quiet: bool, log: Callable[[str], None],
               epoch_hooks: Sequence[EpochHook | None] | None = None):
    self.exps, self.runs, self.group, self.parallel = list(exps), list(runs), group, parallel
    # Member 0's experiment: its model, optimizer, data and schedule are every member's.
    self.shared, self.config = exps[0], exps[0].config
    self.quiet = quiet or not runs[0].writer  # One process reports.
    self.log = log
    self.names = [str(run.path) for run in runs]
    self.checkpointers = [Checkpointer(run.path, exp.config.checkpoints_to_keep, exp.selection)
                          for run, exp in zip(runs, exps)]
    self.eval_batch_size = parallel.eval_batch_size(eval_batch_length(self.shared))
    state = parallel.place_state(group.stack([e.initial_state for e in exps]))
    self.state_sharding = parallel.state_shardings(state)
    self.train_step, self.eval_step = jit_steps(self.shared, group, parallel, self.state_sharding)
    self.input = GroupInput(exps, group, parallel)
    self.writers: list[list] = [[] for _ in runs]  # TensorBoard / W&B, opened by run().
    self.hooks = list(epoch_hooks or [None] * len(runs))
    self.stopped = [False] * len(runs)  # Stopped by its hook.

  # --- resuming -------------------------------------------------------------------------------

  def is_done(self, member: int, history: Sequence[dict[str, Any]]) -> bool:
    """A member is done after its last epoch, or once its selection rule or hook stops it."""
    return (len(history) >= self.config.num_epochs or self.stopped[member]
            or self.shared.selection.should_stop(history))

  def _call_hook(self, member: int, history: Sequence[dict[str, Any]]) -> None:
    if self.hooks[member] is not None and history and not self.stopped[member]:
      self.stopped[member] = bool(self.hooks[member](history))

  def resume(self) -> Progress:
    """Restores the latest point every unfinished member has a good checkpoint of.

    Members that are done keep their history and take part only as a
    placeholder (their slot is trained but never recorded again).
    """
    good = [good_steps(ckpt, self.log) for ckpt in self.checkpointers]
    latest = [self.checkpointers[i].progress(steps[-1]) if steps else None
              for i, steps in enumerate(good)]
    for i, saved in enumerate(latest):
      self._call_hook(i, saved["history"] if saved else [])
    active, step = resume_point(good, latest, self.is_done)
    states, restored = restore_members(self.exps, self.checkpointers, step, active, latest)
    return resumed_progress(self.parallel.place_state(self.group.stack(states)), restored,
                            active, step)

  def active(self, progress: Progress) -> list[int]:
    return [i for i, h in enumerate(progress.histories) if not self.is_done(i, h)]

  # --- checkpoints ----------------------------------------------------------------------------

  def save(self, progress: Progress, epoch_end: bool) -> None:
    """Checkpoints every unfinished member (epoch ends carry the selection metric)."""
    states = self.group.unstack(progress.state)
    progress.native_kernels = tuple(dict.fromkeys([*progress.native_kernels, *native_build.loaded()]))
    for i in self.active_at_save(progress, epoch_end):
      history = progress.histories[i]
      metrics = self.shared.selection.checkpoint_metrics(history[-1]) if epoch_end else None
      self.checkpointers[i].save(states[i], progress.saved(i), metrics)
    progress.saved_step = progress.step

  def active_at_save(self, progress: Progress, epoch_end: bool) -> list[int]:
    # At an epoch's end the members that just stopped early save their last state too.
    if not epoch_end:
      return self.active(progress)
    return [i for i, h in enumerate(progress.histories) if h and h[-1]["step"] == progress.step]

  # --- one epoch --------------------------------------------------------------------------------

  def train_epoch(self, progress: Progress, epoch: int, stop: StopSignals,
                  reporter: Reporter) -> tuple[Any, float]:
    """Trains the rest of ``epoch``; returns its metric sums and the examples they held before.

    Checkpoints every ``checkpoint_every_steps`` and on a stop signal, except at
    the epoch's last step, whose checkpoint is written with the epoch's row.
    """
    spe = self.shared.steps_per_epoch
    start_batch = progress.step - epoch * spe  # > 0 when resuming mid-epoch.
    sums = self._restored_sums(progress, start_batch)
    # Examples (all members) counted before this session: restored with the epoch's sums.
    before = sum(s["count"] for s in progress.partial_sums) if start_batch else 0.0
    t_mark = time.perf_counter()
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
      t_mark = self._checkpoint_mid_epoch(progress, epoch, sums, stop, t_mark)
      self._advance(reporter, progress.step, sums)
      self._log_running(progress, sums)
    jax.block_until_ready(progress.state.step)
    progress.train_s += time.perf_counter() - t_mark
    return sums, before

  def _restored_sums(self, progress: Progress, start_batch: int) -> Any:
    """The metric sums of the epoch's steps before ``start_batch`` (None at its start)."""
    if not start_batch:
      return None
    if progress.partial_sums is None:
      raise CheckpointError(f"{self.names[0]}: the checkpoint at step {progress.step} has no "
                            "metric sums of its unfinished epoch; the run folder is inconsistent: "
                            "train it again with --overwrite")
    return self.group.stack([from_json(s) for s in progress.partial_sums])

  def _checkpoint_mid_epoch(self, progress: Progress, epoch: int, sums: Any, stop: StopSignals,
                            t_mark: float) -> float:
    """Checkpoints every ``checkpoint_every_steps`` and on a stop signal; returns the time mark.

    Not at the epoch's last step: that checkpoint is written with the epoch's row.
    """
    epoch_ends = progress.step == (epoch + 1) * self.shared.steps_per_epoch
    if epoch_ends or not (progress.step % self.config.checkpoint_every_steps == 0
                          or stop.received):
      return t_mark
    jax.block_until_ready(progress.state.step)  # Time the steps, not the queue.
    progress.train_s += time.perf_counter() - t_mark
    self._save_partial(progress, sums)
    if stop.received:
      raise stop.preempted(progress.step)
    return time.perf_counter()

  def _save_partial(self, progress: Progress, sums: Any) -> None:
    host = self.group.host_sums(sums)
    self._check_finite(progress, host)
    progress.partial_sums = host
    self.save(progress, epoch_end=False)

  def _check_finite(self, progress: Progress, host_sums: list[dict[str, float]]) -> None:
    if self.config.nonfinite != "stop":
      return
    active = self.active(progress)
    check_finite([host_sums[i] for i in active], [self.names[i] for i in active],
                 progress.saved_step)

  def _log_running(self, progress: Progress, sums: Any) -> None:
    """Every ``log.every_steps`` steps, the epoch's running training means to the writers."""
    every = self.config.log.every_steps
    if not every or progress.step % every or not any(self.writers):
      return
    means = self.group.means(sums)
    for i in self.active(progress):
      for writer in self.writers[i]:
        writer.running(progress.step, means[i])

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
    active = self.active(progress)
    vals = evaluate_group(self.group, self.eval_step, progress.state, self.shared.datasets.val,
                          self.eval_batch_size, self.parallel,
                          **self.input.settings)
    for i in active:
      row = epoch_row(epoch + 1, progress.step, means(host[i]), vals[i], examples, seconds)
      for key in ("nonfinite_steps", "truncated_steps"):
        if host[i].get(key):
          row["skipped_steps" if key == "nonfinite_steps" else key] = int(host[i][key])
      if self.exps[i].privacy:
        row["epsilon"] = epsilon_spent(self.exps[i].privacy, progress.step)
      progress.histories[i].append(row)
      self._call_hook(i, progress.histories[i])
    progress.partial_sums = None
    # The checkpoint first, then metrics.jsonl: a row on disk is always in a checkpoint.
    self.save(progress, epoch_end=True)
    for i in active:
      self.runs[i].write_metrics(progress.histories[i])
      for writer in self.writers[i]:  # Copies for TensorBoard / W&B, after the truth.
        writer.rows(progress.histories[i])
      prefix = f"{self.runs[i].path.name}: " if self.group.size > 1 else ""
      stopped = (" (stopped by its hook)" if self.stopped[i] else " (early stop)"
                 if self.shared.selection.should_stop(progress.histories[i]) else "")
      reporter.log(prefix + format_row(progress.histories[i][-1]) + stopped)

  # --- the whole run ----------------------------------------------------------------------------

  def train(self, progress: Progress) -> int:
    """Trains until every member is done; returns the steps this session took."""
    start_step = progress.step
    spe = self.shared.steps_per_epoch
    with Reporter(self.shared.total_steps, start_step, self.quiet,
                  self.config.batch_size * self.group.size) as reporter, StopSignals() as stop:
      if start_step:
        reporter.log(f"resuming {', '.join(self.names)} from step {start_step}")
      while active := self.active(progress):
        epoch = len(progress.histories[active[0]])
        if progress.step > (epoch + 1) * spe:
          raise CheckpointError(f"{self.names[active[0]]}: its checkpoint at step "
                                f"{progress.step} has {epoch} epochs of history; the run folder "
                                "is inconsistent: train it again with --overwrite")
        t_epoch = time.perf_counter()
        sums, counted_before = self.train_epoch(progress, epoch, stop, reporter)
        self.end_epoch(progress, epoch, sums, counted_before, time.perf_counter() - t_epoch,
                       reporter)
        if stop.received:
          raise stop.preempted(progress.step)
    return progress.step - start_step

  def restore(self, steps: Sequence[int]) -> Any:
    """The (stacked) state of each member's checkpoint of ``steps[member]``, on the devices."""
    states = []
    for ckpt, exp, step in zip(self.checkpointers, self.exps, steps):
      try:
        states.append(ckpt.restore(exp.initial_state, step)[0])
      except CheckpointError as e:
        raise CheckpointError(f"cannot test the checkpoint of step {step}: {e}") from e
    return self.parallel.place_state(self.group.stack(states))

  def test(self, state: Any) -> list[dict[str, float]]:
    """Each member's test means with ``state``."""
    return evaluate_group(self.group, self.eval_step, state, self.shared.datasets.test,
                          self.eval_batch_size, self.parallel,
                          **self.input.settings)

  def predict(self, state: Any) -> list[dict[str, np.ndarray]]:
    """Each member's per-example test predictions with ``state`` (for paired tests)."""
    jitted = jit_predict_step(self.shared, self.group, self.parallel, self.state_sharding)
    return predict_group(self.group, jitted, state, self.shared.datasets.test,
                         self.eval_batch_size, self.parallel, **self.input.settings)

  def results(self, progress: Progress, wall_start: float) -> list[dict[str, Any]]:
    """Tests the selected and the last checkpoints and writes each member's results.json."""
    progress.state = None  # Free the devices for the checkpoints under test.
    chosen = self.shared.selection
    selected = [h[chosen.best_index(h)]["step"] for h in progress.histories]
    last = [h[-1]["step"] for h in progress.histories]
    selected_state = self.restore(selected)
    selected_test = self.test(selected_state)
    predictions = self.predict(selected_state)
    del selected_state
    last_test = selected_test if selected == last else self.test(self.restore(last))
    variables = self.shared.initial_state.variables()
    spec = self.shared.datasets.spec
    size = {"num_params": models.count_params(variables["params"]),
            "flops_per_example": models.flops_per_example(
                self.shared.model, variables, spec.input_shape, spec.input_dtype,
                self.shared.datasets.train.extra)}
    timing = {"train_s": progress.train_s, "compile_s": progress.compile_s,
              "wall_s": time.perf_counter() - wall_start, "group_steps": progress.step,
              "native_kernels": list(progress.native_kernels)}
    all_results = []
    for exp, run, history, sel, lst, predicted in zip(
        self.exps, self.runs, progress.histories, selected_test, last_test, predictions):
      results = run_results(exp, history, sel, lst, size=size, timing=timing,
                            members=self.group.size)
      run.write_arrays(PREDICTIONS, predicted)  # Before results.json, which says the run is done.
      run.write("results.json", results)
      all_results.append(results)
    return all_results

  def run(self, wall_start: float) -> list[dict[str, Any]]:
    progress = self.resume()
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
    return self.results(progress, wall_start)

  def close(self) -> None:
    for ckpt in self.checkpointers:
      ckpt.close()
    for writer in (w for writers in self.writers for w in writers):
      writer.close()


def _sync(name: str) -> None:
  """All processes wait here (multi-host); a no-op in one process."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(name)


def train_group(configs: Sequence[ml_collections.ConfigDict],
                workdirs: Sequence[str | pathlib.Path], *, vectorized: bool,
                quiet: bool = False, overwrite: bool = False, command: Sequence[str] = (),
                datasets: data_lib.Datasets | None = None, model: Any = None,
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
    model: the model as a Python object (see ``build_experiment``), if not by name.
    log: where messages go.
    epoch_hooks: per member, ``hook(history) -> stop`` after each epoch (see GroupTrainer).

  Returns:
    Each member's results (also written to its ``results.json``).
  """
  wall_start = time.perf_counter()
  group = MemberGroup(len(configs), vectorized)
  # Every check first: a refused run leaves its folder as it was.
  first = build_experiment(configs[0], datasets, model)
  exps = [first] + [build_experiment(c, first.datasets, model) for c in configs[1:]]
  parallel = DataParallel.over_all_devices(stacked=vectorized,
                                           model_axis=first.config.parallel.model_axis)
  parallel.check_batch_size(first.config.batch_size)
  if jax.process_index() == 0:
    for change in first.datasets.spec.changes:  # Examples the data left out or changed.
      log(f"data: {change}")
  runs = [RunFolder(w) for w in workdirs]
  code = [user_code.record(exp.config, [model]) for exp in exps]  # The researcher's files.
  with contextlib.ExitStack() as held:
    for run in runs:
      held.enter_context(run.lock(log))
    for run, exp, files in zip(runs, exps, code):
      run.check_claim(config_to_dict(exp.config), exp.datasets.vocab, overwrite, files)
    _sync("jaxdl: run folders checked")
    for run, exp, files in zip(runs, exps, code):
      run.start(config_to_dict(exp.config), exp.datasets.spec.to_dict(), exp.datasets.vocab,
                command, overwrite, files)
    _sync("jaxdl: run folders ready")
    trainer = GroupTrainer(exps, runs, group, parallel, quiet, log, epoch_hooks)
    try:
      return trainer.run(wall_start)
    except jax.errors.JaxRuntimeError as e:
      if "RESOURCE_EXHAUSTED" not in str(e) and "out of memory" not in str(e).lower():
        raise
      raise _out_of_memory(e, first, group.size) from e
    finally:
      trainer.close()


def _out_of_memory(error: Exception, exp: Experiment, members: int) -> JaxdlError:
  """A device OOM as one line with the sizes that caused it and what to change."""
  params = models.count_params(exp.initial_state.params)
  return JaxdlError(
      f"the device ran out of memory running {members} member(s) of {params:,} "
      f"parameters at batch_size={exp.config.batch_size} on {jax.device_count()} "
      f"device(s) ({str(error).strip().splitlines()[0][:200]}); lower batch_size (or "
      "eval_batch_size, or the model), or add devices; the last checkpoint is kept")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, *,
                       quiet: bool = False, overwrite: bool = False,
                       command: Sequence[str] = (), datasets: data_lib.Datasets | None = None,
                       model: Any = None) -> dict[str, Any]:
  """Trains ``config`` in ``workdir`` (resuming from its last checkpoint) and tests it.

  Returns:
    The results written to ``workdir/results.json``.
  """
  return train_group([config], [workdir], vectorized=False, quiet=quiet, overwrite=overwrite,
                     command=command, datasets=datasets, model=model)[0]


