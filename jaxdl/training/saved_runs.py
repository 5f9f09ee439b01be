"""A finished (or interrupted) run read back: its experiment and a checkpoint, re-evaluated."""

import pathlib
from collections.abc import Callable
from typing import Any

import jax

from jaxdl import data as data_lib
from jaxdl.configs.loading import config_from_dict
from jaxdl.errors import CheckpointError
from jaxdl.training.checkpoint import Checkpointer
from jaxdl.training.evaluation import evaluate
from jaxdl.training.experiment import Experiment, build_experiment, eval_batch_length
from jaxdl.training.run_folder import RunFolder, read_json
from jaxdl.training.state import TrainState
from jaxdl.training.steps import make_eval_step


def load_run(workdir: str | pathlib.Path, checkpoint: str = "selected", *,
             model: Any = None, data: Callable | None = None
             ) -> tuple[Experiment, TrainState, RunFolder]:
  """Rebuilds a run's experiment from its config.json and restores one of its checkpoints.

  Args:
    workdir: the run folder.
    checkpoint: ``'selected'`` (the model its results come from) or ``'last'``.
    model: the model object, for a run trained on one given to the API.
    data: the data function, likewise.
  """
  if checkpoint not in ("selected", "last"):
    raise CheckpointError(f"checkpoint must be 'selected' or 'last', got {checkpoint!r}")
  run = RunFolder(workdir)
  if not run.file("config.json").exists():
    raise CheckpointError(f"{workdir} is not a run folder (no config.json); pass the "
                          "--workdir of a `jaxdl train` run")
  config = config_from_dict(read_json(run.file("config.json")), model)
  datasets = data_lib.build(config.data, config.experiment, data) if data is not None else None
  exp = build_experiment(config, datasets, model)
  run.check_vocab(exp.datasets.vocab, required=True)
  checkpointer = Checkpointer(workdir, exp.config.checkpoints_to_keep, exp.selection)
  try:
    steps = checkpointer.all_steps()
    if not steps:
      raise CheckpointError(f"no checkpoint in {checkpointer.directory}; train first with "
                            "`jaxdl train CONFIG --workdir DIR`")
    history = checkpointer.progress(steps[-1])["history"]
    step = steps[-1]
    if checkpoint == "selected" and history:
      step = history[exp.selection.best_index(history)]["step"]
    state, _ = checkpointer.restore(exp.initial_state, step)
  finally:
    checkpointer.close()
  return exp, state, run


def evaluate_run(workdir: str | pathlib.Path, checkpoint: str = "selected", *,
                 model: Any = None, data: Callable | None = None) -> dict[str, Any]:
  """Re-evaluates a run's checkpoint on its validation and test splits; writes eval.json."""
  exp, state, run = load_run(workdir, checkpoint, model=model, data=data)
  eval_step = jax.jit(make_eval_step(exp.model, exp.objective, exp.compute_dtype))
  results: dict[str, Any] = {"checkpoint": checkpoint, "step": int(state.step)}
  for name, split in (("val", exp.datasets.val), ("test", exp.datasets.test)):
    for key, value in evaluate(eval_step, state, split, eval_batch_length(exp)).items():
      results[f"{name}_{key}"] = value
  run.write("eval.json", results)
  return results
