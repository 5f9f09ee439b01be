"""A finished (or interrupted) run read back: its experiment and a checkpoint, re-evaluated."""

import contextlib
import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import jax

from jaxdl import parts
from jaxdl.configs.loading import config_from_dict
from jaxdl.errors import CheckpointError
from jaxdl.training.checkpoint import Checkpointer
from jaxdl.training.evaluation import evaluate
from jaxdl.training.experiment import Experiment, build_experiment, eval_batch_length
from jaxdl.training.run_folder import RunFolder, read_json
from jaxdl.training.state import TrainState
from jaxdl.training.steps import make_eval_step


@contextlib.contextmanager
def handed_to_run(workdir: str | pathlib.Path, model: Any = None,
                  data: Callable | None = None) -> Iterator[None]:
  """The API's objects for the block (``parts.given``), as the model and data parts the
  run's config.json names: a run trained on objects needs them again to be loaded."""
  path = RunFolder(workdir).file("config.json")
  saved = read_json(path) if path.exists() else {}
  name = lambda section: saved.get(section, {}).get("name", "")
  with parts.given(model=(name("model"), model), data=(name("data"), data)):
    yield


def load_run(workdir: str | pathlib.Path, checkpoint: str = "selected"
             ) -> tuple[Experiment, TrainState, RunFolder]:
  """Rebuilds a run's experiment from its config.json and restores one of its checkpoints.

  Args:
    workdir: the run folder (a run trained on objects given to the API: inside
      ``handed_to_run``).
    checkpoint: ``'selected'`` (the model its results come from) or ``'last'``.
  """
  if checkpoint not in ("selected", "last"):
    raise CheckpointError(f"checkpoint must be 'selected' or 'last', got {checkpoint!r}")
  run = RunFolder(workdir)
  if not run.file("config.json").exists():
    raise CheckpointError(f"{workdir} is not a run folder (no config.json); pass the "
                          "--workdir of a `jaxdl train` run")
  exp = build_experiment(config_from_dict(read_json(run.file("config.json"))))
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


def evaluate_run(workdir: str | pathlib.Path, checkpoint: str = "selected") -> dict[str, Any]:
  """Re-evaluates a run's checkpoint on its validation and test splits; writes eval.json."""
  exp, state, run = load_run(workdir, checkpoint)
  eval_step = jax.jit(make_eval_step(exp.model, exp.objective, exp.compute_dtype))
  results: dict[str, Any] = {"checkpoint": checkpoint, "step": int(state.step)}
  for name, split in (("val", exp.datasets.val), ("test", exp.datasets.test)):
    for key, value in evaluate(eval_step, state, split, eval_batch_length(exp)).items():
      results[f"{name}_{key}"] = value
  run.write("eval.json", results)
  return results
