"""``train_and_evaluate``: the training loop, its checkpoints and its run folder.

The loop is host-side glue around two jitted pure functions (train and eval
steps). Nothing here names a device: the same code runs on CPU, GPU and TPU.
"""

import dataclasses
import pathlib
import shutil
import signal
import threading
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxdl import cost, data, models
from jaxdl.configs.loading import config_from_dict, config_to_dict
from jaxdl.data.arrays import Split
from jaxdl.errors import CheckpointError, ConfigError, NonFiniteError, Preempted
from jaxdl.train.checkpoint import Checkpointer
from jaxdl.train.objectives import OBJECTIVES, means
from jaxdl.train.objectives import add as add_sums
from jaxdl.train import privacy
from jaxdl.train.optim import build_optimizer
from jaxdl.train.parallel import DataParallel
from jaxdl.train.progress import Reporter, format_row
from jaxdl.train.run_folder import RunFolder, read_json
from jaxdl.train.state import TrainState, create_train_state
from jaxdl.train.steps import NONFINITE_POLICIES, EvalStep, make_eval_step, make_train_step


# config.dtype -> the dtype the steps compute in (None: as stored, float32).
COMPUTE_DTYPES = {"float32": None, "bfloat16": jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class Experiment:
  """Everything built from a config before training starts."""

  config: ml_collections.ConfigDict
  datasets: data.Datasets
  model: Any
  tx: optax.GradientTransformation
  initial_state: TrainState
  steps_per_epoch: int
  privacy: dict | None = None  # DP-SGD settings in use (noise calibrated), or None.

  @property
  def total_steps(self) -> int:
    return self.steps_per_epoch * self.config.num_epochs


def build_experiment(config: ml_collections.ConfigDict,
                     datasets: data.Datasets | None = None) -> Experiment:
  """Data (unless given), model, optimizer and initial state for ``config``."""
  _check_positive(config, ("batch_size", "eval_batch_size", "num_epochs",
                           "checkpoint_every_steps"))
  if config.dtype not in COMPUTE_DTYPES:
    raise ConfigError(f"dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {config.dtype!r}")
  if config.nonfinite not in NONFINITE_POLICIES:
    raise ConfigError(f"nonfinite must be one of {', '.join(NONFINITE_POLICIES)}, got "
                      f"{config.nonfinite!r}")
  datasets = datasets or data.build(config.data)
  model = models.build(config.model, datasets.spec)
  steps_per_epoch = data.num_batches(datasets.spec.num_train, config.batch_size)
  tx = build_optimizer(config.optim, steps_per_epoch * config.num_epochs, steps_per_epoch)
  state = create_train_state(jax.random.PRNGKey(config.seed), model, tx, datasets.spec)
  private = None
  if config.privacy.enabled:
    if state.batch_stats:
      raise ConfigError("DP-SGD needs per-example gradients, which batch norm mixes across the "
                        "batch; set model.batch_norm=false")
    private = privacy.resolve(config.privacy, datasets.spec.num_train, config.batch_size,
                              steps_per_epoch * config.num_epochs)
  return Experiment(config, datasets, model, tx, state, steps_per_epoch, private)


def _check_positive(config: ml_collections.ConfigDict, keys: Sequence[str]) -> None:
  for key in keys:
    if config[key] < 1:
      raise ConfigError(f"{key} must be at least 1, got {config[key]}")


_add = jax.jit(add_sums)


class _StopSignals:
  """Turns SIGTERM and SIGINT into a request to stop after the current step.

  Handlers are installed only in the main thread (Python allows no others).
  """

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.received: int | None = None
    self._previous = {}

  def __enter__(self) -> "_StopSignals":
    if threading.current_thread() is threading.main_thread():
      for sig in self.SIGNALS:
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame) -> None:
    del frame
    self.received = signum

  def __exit__(self, *exc) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


def _check_finite(host_sums: list[dict[str, float]], names: Sequence[str],
                  last_good: int | None) -> None:
  """Raises NonFiniteError if any member met a non-finite loss or gradient."""
  for name, sums in zip(names, host_sums):
    if sums.get("nonfinite_steps", 0.0) > 0:
      loss_step, grad_step = int(sums["first_nonfinite_loss"]), int(sums["first_nonfinite_grad"])
      what, step = ("loss", loss_step) if loss_step <= grad_step else ("gradient", grad_step)
      kept = (f"the last good checkpoint (step {last_good}) is kept" if last_good
              else "no checkpoint had been written yet")
      raise NonFiniteError(f"{name}: non-finite {what} at step {step}; {kept}. Lower "
                           "optim.learning_rate, set optim.grad_clip_norm, or set "
                           "nonfinite=skip to skip such steps")


class Members:
  """Runs trained together: one state pytree, stacked on a leading axis when vectorized.

  A lone run is a group of one that is not vectorized, so there is one loop.
  """

  def __init__(self, size: int, vectorized: bool):
    if size > 1 and not vectorized:
      raise ValueError("several members are trained together only when vectorized")
    self.size, self.vectorized = size, vectorized

  def combine(self, trees: Sequence[Any]) -> Any:
    """One tree from one per member (stacked on axis 0 when vectorized)."""
    if not self.vectorized:
      return trees[0]
    return jax.tree_util.tree_map(lambda *xs: np.stack(xs) if isinstance(xs[0], np.ndarray)
                                  else jnp.stack(xs), *trees)

  def split(self, tree: Any) -> list[Any]:
    """One tree per member."""
    if not self.vectorized:
      return [tree]
    return [jax.tree_util.tree_map(lambda x, i=i: x[i], tree) for i in range(self.size)]

  def transform(self, fn, in_axes=0):
    return jax.vmap(fn, in_axes=in_axes) if self.vectorized else fn

  def means(self, sums: Any) -> list[dict[str, float]]:
    """Per-member mean metrics from (stacked) metric sums."""
    host = jax.device_get(sums)
    return [means({k: float(v) for k, v in member.items()}) for member in self.split(host)]


def _evaluate_members(members: Members, eval_step: EvalStep, state: TrainState, split: Split,
                      batch_size: int, parallel: DataParallel | None = None
                      ) -> list[dict[str, float]]:
  if len(split) == 0:
    return [{} for _ in range(members.size)]
  sums = None
  for batch in data.eval_batches(split, batch_size):
    batch_sums = eval_step(state, parallel.shard(batch, stacked=False) if parallel else batch)
    sums = batch_sums if sums is None else _add(sums, batch_sums)
  return members.means(sums)


def evaluate(eval_step: EvalStep, state: TrainState, split: Split,
             batch_size: int) -> dict[str, float]:
  """Mean metrics over every example of ``split`` (each counted once)."""
  return _evaluate_members(Members(1, False), eval_step, state, split, batch_size)[0]


def _epoch_row(epoch: int, step: int, train: dict, val: dict, examples: int,
               seconds: float) -> dict[str, Any]:
  row: dict[str, Any] = {"epoch": epoch, "step": step}
  row.update({f"train_{k}": v for k, v in train.items()})
  row.update({f"val_{k}": v for k, v in val.items()})
  row.update({"examples_per_s": examples / seconds if seconds > 0 else None, "wall_s": seconds})
  return row


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, *,
                       quiet: bool = False, overwrite: bool = False,
                       command: Sequence[str] = ()) -> dict[str, Any]:
  """Trains ``config`` in ``workdir`` (resuming from its last checkpoint) and tests it.

  Returns:
    The results written to ``workdir/results.json``.
  """
  return train_together([config], [workdir], vectorized=False, quiet=quiet,
                        overwrite=overwrite, command=command)[0]


def _common_step(checkpointers: Sequence[Checkpointer]) -> int | None:
  """The latest step that every member has a checkpoint of (None: start afresh)."""
  steps = [set(c.all_steps()) for c in checkpointers]
  common = set.intersection(*steps) if steps else set()
  return max(common) if common else None


def train_together(configs: Sequence[ml_collections.ConfigDict],
                   workdirs: Sequence[str | pathlib.Path], *, vectorized: bool,
                   quiet: bool = False, overwrite: bool = False,
                   command: Sequence[str] = ()) -> list[dict[str, Any]]:
  """Trains runs that differ only in values (seed, learning rate, ...) as one program.

  With ``vectorized``, the members' states are stacked on a leading axis and one
  ``jax.vmap``-ed step trains them all; each keeps its own init key, data
  order and optimizer hyperparameters (which live in its optimizer state), and
  each writes its own run folder, exactly as a lone run would.

  Args:
    configs: one config per member, equal in everything that changes shapes or code.
    workdirs: one run folder per member.
    vectorized: train with vmap (required for more than one member).

  Returns:
    Each member's results (also written to its ``results.json``).
  """
  t_start = time.perf_counter()
  members = Members(len(configs), vectorized)
  runs = []
  for config, workdir in zip(configs, workdirs):
    if overwrite and pathlib.Path(workdir).exists():
      shutil.rmtree(workdir)
    run = RunFolder(workdir)
    run.claim(config_to_dict(config))
    runs.append(run)
  lead = build_experiment(configs[0])
  exps = [lead] + [build_experiment(c, lead.datasets) for c in configs[1:]]
  spec, config = lead.datasets.spec, lead.config
  for run in runs:
    run.write("data_spec.json", spec.to_dict())
    _check_vocab(run, lead.datasets.vocab)
    run.record_session(command)

  checkpointers = [Checkpointer(run.path, c.checkpoints_to_keep) for run, c in zip(runs, configs)]
  states = [e.initial_state for e in exps]
  progress = [{"history": [], "epoch_sums": None, "train_s": 0.0} for _ in exps]
  resume_step = _common_step(checkpointers)
  if resume_step is not None:
    restored = [c.restore(s, resume_step) for c, s in zip(checkpointers, states)]
    states, progress = [r[0] for r in restored], [r[1] for r in restored]
  histories: list[list[dict[str, Any]]] = [p["history"] for p in progress]
  for run, history in zip(runs, histories):
    run.write_metrics(history)  # The checkpoint's history is the truth on resume.
  parallel = DataParallel.over_all_devices(stacked=vectorized,
                                           model_axis=config.parallel.model_axis)
  parallel.check_batch_size(config.batch_size)
  eval_batch_size = parallel.eval_batch_size(config.eval_batch_size)
  state = parallel.place_state(members.combine(states))
  state_sharding = parallel.state_shardings(state)

  train_step, eval_step = jit_steps(lead, members, parallel, state_sharding)
  step = start_step = resume_step or 0
  train_s = float(progress[0]["train_s"])
  compile_s = 0.0

  names = [str(run.path) for run in runs]
  last_good = [resume_step]

  def host_sums(epoch_sums) -> list[dict[str, float]]:
    return [{k: float(v) for k, v in s.items()} for s in members.split(jax.device_get(epoch_sums))]

  def save(epoch_sums):
    member_sums = [None] * members.size if epoch_sums is None else host_sums(epoch_sums)
    if epoch_sums is not None and config.nonfinite == "stop":
      _check_finite(member_sums, names, last_good[0])
    last_good[0] = step
    for i, member_state in enumerate(members.split(state)):
      checkpointers[i].save(member_state, {"history": histories[i], "train_s": train_s,
                                           "epoch_sums": member_sums[i]})

  quiet = quiet or not runs[0].writer  # One process reports.
  with Reporter(lead.total_steps, start_step, quiet,
                config.batch_size * members.size) as reporter, _StopSignals() as stop:
    if start_step:
      reporter.log(f"resuming {', '.join(str(r.path) for r in runs)} from step {start_step}")
    for epoch in range(start_step // lead.steps_per_epoch, config.num_epochs):
      first = step - epoch * lead.steps_per_epoch
      sums = None
      if first:
        sums = members.combine([{k: np.float32(v) for k, v in p["epoch_sums"].items()}
                                for p in progress])
      t_epoch = t_mark = time.perf_counter()
      examples = 0
      member_batches = [data.train_batches(lead.datasets.train, config.batch_size, c.seed, epoch,
                                           start=first, shift=c.data.augment_shift)
                        for c in configs]
      for batches in zip(*member_batches):
        t_step = time.perf_counter()
        state, step_sums = train_step(state, parallel.shard(members.combine(batches)))
        if compile_s == 0.0:
          jax.block_until_ready(state.step)
          compile_s = time.perf_counter() - t_step
        sums = step_sums if sums is None else _add(sums, step_sums)
        examples += int(batches[0]["mask"].sum()) * members.size  # Every member's examples.
        step += 1
        if step % config.checkpoint_every_steps == 0 or stop.received:
          jax.block_until_ready(state.step)
          train_s += time.perf_counter() - t_mark
          save(sums)
          t_mark = time.perf_counter()
          if stop.received:
            raise Preempted(f"stopped by {signal.Signals(stop.received).name} at step {step}; "
                            "a checkpoint was written: rerun the same command to resume")
        if reporter.wants_live_metrics():
          live = members.means(sums)
          reporter.advance(step, {k: float(np.mean([m[k] for m in live])) for k in live[0]})
        else:
          reporter.advance(step)
      jax.block_until_ready(state.step)
      train_s += time.perf_counter() - t_mark
      epoch_s = time.perf_counter() - t_epoch
      epoch_sums = host_sums(sums)
      if config.nonfinite == "stop":
        _check_finite(epoch_sums, names, last_good[0])
      vals = _evaluate_members(members, eval_step, state, lead.datasets.val, eval_batch_size,
                               parallel)
      for i, (train_means, val) in enumerate(zip(members.means(sums), vals)):
        row = _epoch_row(epoch + 1, step, train_means, val, examples, epoch_s)
        if epoch_sums[i]["nonfinite_steps"]:
          row["skipped_steps"] = int(epoch_sums[i]["nonfinite_steps"])
        if lead.privacy:
          row["epsilon"] = _spent(lead.privacy, step)
        histories[i].append(row)
      save(None)
      for run, history in zip(runs, histories):
        run.write_metrics(history)
        prefix = f"{run.path.name}: " if members.size > 1 else ""
        reporter.log(prefix + format_row(history[-1]))

  tests = _evaluate_members(members, eval_step, state, lead.datasets.test, eval_batch_size,
                            parallel)
  for c in checkpointers:
    c.close()
  first_state = members.split(state)[0]
  flops = models.flops_per_example(lead.model, first_state.variables(), spec.input_shape,
                                   spec.input_dtype)
  num_train_examples = spec.num_train * config.num_epochs * members.size
  all_results = []
  for member_config, run, history, test in zip(configs, runs, histories, tests):
    results = {
        "test_accuracy": test.get("accuracy"),
        "test_loss": test["loss"],
        **{f"test_{k}": v for k, v in test.items() if k not in ("accuracy", "loss")},
        **{k: history[-1].get(k) for k in ("train_loss", "train_accuracy", "val_loss",
                                           "val_accuracy")},
        "num_params": models.count_params(first_state.params),
        "flops_per_example": flops,
        "steps": step,
        "epochs": config.num_epochs,
        # With several members, throughput counts every member's examples.
        "examples_per_s": num_train_examples / train_s if train_s > 0 else None,
        "train_s": train_s,
        # Seconds of training per epoch (shared by all members of a vectorized group).
        "train_s_per_epoch": train_s / config.num_epochs,
        "compile_s": compile_s or None,
        "wall_s": time.perf_counter() - t_start,
        "seed": member_config.seed,
        "model": member_config.model.name,
        "data": spec.name,
        "num_train": spec.num_train,
        "num_val": spec.num_val,
        "num_test": spec.num_test,
        "data_notes": list(spec.notes),
        "trained_with": members.size if members.vectorized else 1,
    }
    # Cost of the compiled program (all members of a vectorized group together).
    results.update(cost.cost_report(flops, results["examples_per_s"]))
    if lead.privacy:
      results.update({f"privacy_{k}": v for k, v in lead.privacy.items()})
      results["privacy_epsilon"] = _spent(lead.privacy, step)
    results = {k: v for k, v in results.items() if v is not None or k.startswith("test_")}
    run.write("results.json", results)
    all_results.append(results)
  return all_results


def jit_steps(exp: Experiment, members: Members, parallel: DataParallel,
              state_sharding: Any) -> tuple[Any, Any]:
  """The jitted train and eval steps that ``jaxdl train`` runs, for ``exp``'s model.

  Args:
    exp: the (lead) experiment: model, optimizer, objective, dtype and privacy.
    members: how many runs the steps train at once (vmapped when vectorized).
    parallel: the device mesh; batches are sharded over its data axis.
    state_sharding: the (stacked) state's shardings, from ``parallel.state_shardings``.

  Returns:
    ``(train_step, eval_step)``: ``train_step(state, batch) -> (state, metric sums)``
    donates its state; ``eval_step(state, batch) -> metric sums``.
  """
  config = exp.config
  objective = OBJECTIVES[exp.datasets.spec.task]
  dp = None if exp.privacy is None else {**exp.privacy, "batch_size": config.batch_size}
  dtype = COMPUTE_DTYPES[config.dtype]
  train_step = jax.jit(members.transform(make_train_step(exp.model, exp.tx, objective,
                                                       config.nonfinite, dp, dtype)),
                       donate_argnums=0,
                       in_shardings=(state_sharding, parallel.batch_sharding()),
                       out_shardings=(state_sharding, parallel.replicated))
  eval_step = jax.jit(members.transform(make_eval_step(exp.model, objective, dtype),
                                        in_axes=(0, None)),
                      in_shardings=(state_sharding, parallel.batch_sharding(stacked=False)),
                      out_shardings=parallel.replicated)
  return train_step, eval_step


def _spent(settings: dict, steps: int) -> float:
  """The ε spent after ``steps`` DP-SGD steps."""
  return privacy.epsilon(settings["noise_multiplier"], settings["sampling_rate"], steps,
                         settings["delta"], settings["accountant"])


def _check_vocab(run: RunFolder, vocab: tuple[str, ...] | None) -> None:
  """Saves the text vocabulary, or checks it against the one the run was trained with."""
  if vocab is None:
    return
  path = run.file("vocab.json")
  if not path.exists():
    run.write("vocab.json", list(vocab))
    return
  saved = read_json(path)
  if saved != list(vocab):
    first = next((i for i, (a, b) in enumerate(zip(saved, vocab)) if a != b),
                 min(len(saved), len(vocab)))
    raise CheckpointError(f"the text vocabulary rebuilt from the data differs from the run's "
                          f"{path} (size {len(vocab)} vs {len(saved)}, first difference at id "
                          f"{first}); the data changed since training: restore it, or train a "
                          "new run")


def load_run(workdir: str | pathlib.Path) -> tuple[Experiment, TrainState, RunFolder]:
  """Rebuilds a run's experiment from its config.json and restores its last checkpoint."""
  run = RunFolder(workdir)
  if not run.file("config.json").exists():
    raise CheckpointError(f"{workdir} is not a run folder (no config.json); pass the "
                          "--workdir of a `jaxdl train` run")
  exp = build_experiment(config_from_dict(read_json(run.file("config.json"))))
  _check_vocab(run, exp.datasets.vocab)
  checkpointer = Checkpointer(workdir)
  state, _ = checkpointer.restore(exp.initial_state)
  checkpointer.close()
  return exp, state, run
