"""After training: test the selected and the last checkpoints, keep the selected one's
per-example test predictions (for paired tests), and write each member's results.json."""

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from jaxdl import models
from jaxdl.data.arrays import Split
from jaxdl.training.evaluation import evaluate_group, predict_group
from jaxdl.training.experiment import Experiment
from jaxdl.training.group import MemberGroup
from jaxdl.training.members import Members
from jaxdl.training.parallel import DataParallel
from jaxdl.training.resume import Progress
from jaxdl.training.results import run_results
from jaxdl.training.run_folder import PREDICTIONS, RunFolder
from jaxdl.training.steps import EvalStep, PredictStep


@dataclasses.dataclass
class GroupEvaluator:
  """``evaluate_group`` and ``predict_group`` with one group's fixed arguments.

  Attributes:
    group: how the members are stacked.
    eval_step: the jitted evaluation step.
    batch_size: examples per evaluation batch (all devices).
    parallel: the device mesh.
    settings: the input pipeline's settings (``GroupInput.settings``).
    predict_step: builds the jitted prediction step (compiled only when the run is tested).
  """

  group: MemberGroup
  eval_step: EvalStep
  batch_size: int
  parallel: DataParallel
  settings: dict[str, Any]
  predict_step: Callable[[], PredictStep]

  def means(self, state: Any, split: Split) -> list[dict[str, float]]:
    """Each member's mean metrics over every example of ``split``."""
    return evaluate_group(self.group, self.eval_step, state, split, self.batch_size,
                          self.parallel, **self.settings)

  def predictions(self, state: Any, split: Split) -> list[dict[str, np.ndarray]]:
    """Each member's per-example predictions on ``split``."""
    return predict_group(self.group, self.predict_step(), state, split, self.batch_size,
                         self.parallel, **self.settings)


def model_size(exp: Experiment) -> dict[str, Any]:
  """Parameters and forward FLOPs per example of ``exp``'s model."""
  variables = exp.initial_state.variables()
  spec = exp.datasets.spec
  return {"num_params": models.count_params(variables["params"]),
          "flops_per_example": models.flops_per_example(
              exp.model, variables, spec.input_shape, spec.input_dtype, exp.datasets.train.extra)}


def test_and_write(members: Members, evaluator: GroupEvaluator, runs: Sequence[RunFolder],
                   progress: Progress, wall_start: float) -> list[dict[str, Any]]:
  """Tests the selected and the last checkpoints and writes each member's results.json.

  The selected checkpoint is the one the selection rule picks from each member's history;
  the test set is read here only, once per tested checkpoint.
  """
  progress.state = None  # Free the devices for the checkpoints under test.
  shared = members.exps[0]
  test_split = shared.datasets.test
  selected = [h[shared.selection.best_index(h)]["step"] for h in progress.histories]
  last = [h[-1]["step"] for h in progress.histories]
  selected_state = members.restore(selected)
  selected_test = evaluator.means(selected_state, test_split)
  predictions = evaluator.predictions(selected_state, test_split)
  del selected_state
  last_test = (selected_test if selected == last
               else evaluator.means(members.restore(last), test_split))
  size = model_size(shared)
  timing = {"train_s": progress.train_s, "compile_s": progress.compile_s,
            "wall_s": time.perf_counter() - wall_start, "group_steps": progress.step,
            "native_kernels": list(progress.native_kernels)}
  all_results = []
  for exp, run, history, sel, lst, predicted in zip(
      members.exps, runs, progress.histories, selected_test, last_test, predictions):
    results = run_results(exp, history, sel, lst, size=size, timing=timing,
                          members=members.group.size)
    run.write_arrays(PREDICTIONS, predicted)  # Before results.json, which says the run is done.
    run.write("results.json", results)
    all_results.append(results)
  return all_results
