"""``train_and_evaluate``: the training loop, its checkpoints and its run folder.

The loop is host-side glue around two jitted pure functions (train and eval
steps). Nothing here names a device: the same code runs on CPU, GPU and TPU.
"""

import dataclasses
import pathlib
import shutil
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxdl import data, models
from jaxdl.configs.loading import config_from_dict, config_to_dict
from jaxdl.data.arrays import Split
from jaxdl.errors import CheckpointError, ConfigError
from jaxdl.train.checkpoint import Checkpointer
from jaxdl.train.objectives import OBJECTIVES, means
from jaxdl.train.optim import build_optimizer
from jaxdl.train.progress import Reporter, format_row
from jaxdl.train.run_folder import RunFolder, read_json, write_json
from jaxdl.train.state import TrainState, create_train_state
from jaxdl.train.steps import EvalStep, make_eval_step, make_train_step


@dataclasses.dataclass(frozen=True)
class Experiment:
  """Everything built from a config before training starts."""

  config: ml_collections.ConfigDict
  datasets: data.Datasets
  model: Any
  tx: optax.GradientTransformation
  initial_state: TrainState
  steps_per_epoch: int

  @property
  def total_steps(self) -> int:
    return self.steps_per_epoch * self.config.num_epochs


def build_experiment(config: ml_collections.ConfigDict) -> Experiment:
  """Data, model, optimizer and initial state for ``config``."""
  _check_positive(config, ("batch_size", "eval_batch_size", "num_epochs",
                           "checkpoint_every_steps"))
  datasets = data.build(config.data)
  model = models.build(config.model, datasets.spec)
  steps_per_epoch = data.num_batches(datasets.spec.num_train, config.batch_size)
  tx = build_optimizer(config.optim, steps_per_epoch * config.num_epochs, steps_per_epoch)
  state = create_train_state(jax.random.PRNGKey(config.seed), model, tx, datasets.spec)
  return Experiment(config, datasets, model, tx, state, steps_per_epoch)


def _check_positive(config: ml_collections.ConfigDict, keys: Sequence[str]) -> None:
  for key in keys:
    if config[key] < 1:
      raise ConfigError(f"{key} must be at least 1, got {config[key]}")


_add = jax.jit(lambda a, b: jax.tree_util.tree_map(jnp.add, a, b))


def _host(sums: Any) -> dict[str, float]:
  return {k: float(v) for k, v in jax.device_get(sums).items()}


def evaluate(eval_step: EvalStep, state: TrainState, split: Split,
             batch_size: int) -> dict[str, float]:
  """Mean metrics over every example of ``split`` (each counted once)."""
  if len(split) == 0:
    return {}
  sums = None
  for batch in data.eval_batches(split, batch_size):
    batch_sums = eval_step(state, batch)
    sums = batch_sums if sums is None else _add(sums, batch_sums)
  return means(_host(sums))


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
  t_start = time.perf_counter()
  workdir = pathlib.Path(workdir)
  if overwrite and workdir.exists():
    shutil.rmtree(workdir)
  run = RunFolder(workdir)
  run.claim(config_to_dict(config))
  exp = build_experiment(config)
  spec = exp.datasets.spec
  write_json(run.file("data_spec.json"), spec.to_dict())
  _check_vocab(run, exp.datasets.vocab)
  run.record_session(command)

  checkpointer = Checkpointer(workdir, config.checkpoints_to_keep)
  state, progress = exp.initial_state, {"history": [], "epoch_sums": None, "train_s": 0.0}
  if checkpointer.latest_step() is not None:
    state, progress = checkpointer.restore(state)
  history: list[dict[str, Any]] = progress["history"]
  run.write_metrics(history)  # The checkpoint's history is the truth on resume.

  objective = OBJECTIVES[spec.task]
  train_step = jax.jit(make_train_step(exp.model, exp.tx, objective), donate_argnums=0)
  eval_step = jax.jit(make_eval_step(exp.model, objective))
  step = start_step = int(state.step)
  train_s = float(progress["train_s"])
  compile_s = 0.0

  def save(epoch_sums):
    checkpointer.save(state, {"history": history, "train_s": train_s,
                              "epoch_sums": None if epoch_sums is None else _host(epoch_sums)})

  with Reporter(exp.total_steps, start_step, quiet) as reporter:
    if start_step:
      reporter.log(f"resuming {workdir} from step {start_step}")
    for epoch in range(start_step // exp.steps_per_epoch, config.num_epochs):
      first = step - epoch * exp.steps_per_epoch
      sums = progress["epoch_sums"] if first else None
      sums = None if sums is None else {k: np.float32(v) for k, v in sums.items()}
      t_epoch = t_mark = time.perf_counter()
      examples = 0
      for batch in data.train_batches(exp.datasets.train, config.batch_size, config.seed,
                                      epoch, start=first, shift=config.data.augment_shift):
        t_step = time.perf_counter()
        state, step_sums = train_step(state, batch)
        if compile_s == 0.0:
          jax.block_until_ready(state.step)
          compile_s = time.perf_counter() - t_step
        sums = step_sums if sums is None else _add(sums, step_sums)
        examples += int(batch["mask"].sum())
        step += 1
        if step % config.checkpoint_every_steps == 0:
          jax.block_until_ready(state.step)
          train_s += time.perf_counter() - t_mark
          save(sums)
          t_mark = time.perf_counter()
        reporter.advance(step, means(_host(sums)) if reporter.wants_live_metrics() else None)
      jax.block_until_ready(state.step)
      train_s += time.perf_counter() - t_mark
      epoch_s = time.perf_counter() - t_epoch
      val = evaluate(eval_step, state, exp.datasets.val, config.eval_batch_size)
      history.append(_epoch_row(epoch + 1, step, means(_host(sums)), val, examples,
                                epoch_s))
      save(None)
      run.write_metrics(history)
      reporter.log(format_row(history[-1]))

  test = evaluate(eval_step, state, exp.datasets.test, config.eval_batch_size)
  checkpointer.close()
  num_train_examples = spec.num_train * config.num_epochs
  results = {
      "test_accuracy": test.get("accuracy"),
      "test_loss": test["loss"],
      **{f"test_{k}": v for k, v in test.items() if k not in ("accuracy", "loss")},
      **{k: history[-1].get(k) for k in ("train_loss", "train_accuracy", "val_loss",
                                         "val_accuracy")},
      "num_params": models.count_params(state.params),
      "flops_per_example": models.flops_per_example(exp.model, state.variables(),
                                                    spec.input_shape, spec.input_dtype),
      "steps": int(state.step),
      "epochs": config.num_epochs,
      "examples_per_s": num_train_examples / train_s if train_s > 0 else None,
      "train_s": train_s,
      "compile_s": compile_s or None,
      "wall_s": time.perf_counter() - t_start,
      "seed": config.seed,
      "model": config.model.name,
      "data": spec.name,
      "data_notes": list(spec.notes),
  }
  results = {k: v for k, v in results.items() if v is not None or k.startswith("test_")}
  write_json(run.file("results.json"), results)
  return results


def _check_vocab(run: RunFolder, vocab: tuple[str, ...] | None) -> None:
  """Saves the text vocabulary, or checks it against the one the run was trained with."""
  if vocab is None:
    return
  path = run.file("vocab.json")
  if not path.exists():
    write_json(path, list(vocab))
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
