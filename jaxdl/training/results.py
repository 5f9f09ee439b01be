"""A run's ``results.json``: the selected model's test numbers, and how they were produced.

The test split is evaluated on the checkpoint the run's Selection chose on
validation data (``test_*``), and on the last epoch's (``last_test_*``) for
comparison; ``selected_epoch`` and ``selection_metric`` say which and why.
"""

import math
from collections.abc import Mapping, Sequence
from typing import Any

from jaxdl import cost
from jaxdl.training import privacy
from jaxdl.training.evaluation import epoch_row
from jaxdl.training.experiment import Experiment
from jaxdl.training.metric_sums import means

# Fields that measure the machine, not the result: they differ between two runs
# of the same config (and between a resumed run and an uninterrupted one).
WALL_CLOCK = ("examples_per_s", "train_s", "train_s_per_epoch", "compile_s", "wall_s",
              "achieved_flops_per_s", "fraction_of_matmul_peak", "matmul_peak_flops_per_s",
              "peak_memory_bytes")


def _prefixed(prefix: str, metrics: Mapping[str, float]) -> dict[str, float]:
  return {f"{prefix}{k}": v for k, v in metrics.items()}


def epsilon_spent(settings: dict, steps: int) -> float:
  """The ε of ``steps`` DP-SGD steps with the run's settings."""
  return privacy.epsilon(settings["noise_multiplier"], settings["sampling_rate"], steps,
                         settings["delta"], settings["accountant"])


def member_row(epoch: int, step: int, host_sums: Mapping[str, Any], val: dict[str, float],
               examples: int, seconds: float, privacy_settings: dict | None) -> dict[str, Any]:
  """One member's metrics.jsonl row: its training means (``host_sums``) and validation
  means, throughput, the steps it skipped (non-finite) or truncated, and under DP-SGD the ε
  spent by ``step``."""
  row = epoch_row(epoch, step, means(host_sums), val, examples, seconds)
  for key in ("nonfinite_steps", "truncated_steps"):
    if host_sums.get(key):
      row["skipped_steps" if key == "nonfinite_steps" else key] = int(host_sums[key])
  if privacy_settings:
    row["epsilon"] = epsilon_spent(privacy_settings, step)
  return row


def privacy_results(settings: dict, steps: int) -> dict[str, Any]:
  eps = epsilon_spent(settings, steps)
  out = {f"privacy_{k}": v for k, v in settings.items()}
  out["privacy_epsilon"] = eps
  out["privacy_truncation_delta"] = privacy.truncation_delta(settings, eps) if math.isfinite(
      eps) else None
  return out


def run_results(exp: Experiment, history: Sequence[Mapping[str, Any]],
                selected_test: Mapping[str, float], last_test: Mapping[str, float], *,
                size: dict[str, Any], timing: dict[str, Any], members: int) -> dict[str, Any]:
  """The results of one member.

  Args:
    exp: the member's experiment.
    history: its metrics.jsonl rows.
    selected_test: test means of the selected checkpoint.
    last_test: test means of the last epoch's checkpoint.
    size: ``num_params`` and ``flops_per_example``.
    timing: ``train_s``, ``compile_s``, ``wall_s``, ``group_steps`` (the steps the
      group trained, for throughput) and ``native_kernels`` (those loaded in the
      training process: what may have run instead of pure JAX).
    members: the size of the group it was trained in.
  """
  config, spec, chosen = exp.config, exp.datasets.spec, exp.selection
  best = chosen.best_index(history)
  selected, last = history[best], history[-1]
  split_keys = [k for k in selected if k.startswith(("train_", "val_"))]
  epochs_trained = timing["group_steps"] / exp.steps_per_epoch
  train_s = timing["train_s"]
  results: dict[str, Any] = {
      "test_accuracy": selected_test.get("accuracy"),
      "test_loss": selected_test["loss"],
      **_prefixed("test_", {k: v for k, v in selected_test.items()
                            if k not in ("accuracy", "loss")}),
      **{k: selected[k] for k in split_keys},
      "selected_epoch": selected["epoch"],
      "selected_step": selected["step"],
      **chosen.describe(),
      "metric_modes": exp.objective.metric_modes(),
      "last_epoch": last["epoch"],
      **_prefixed("last_test_", last_test),
      **{f"last_{k}": last[k] for k in split_keys if k.startswith("val_")},
      "stopped_early": len(history) < config.num_epochs,
      **size,
      "steps": last["step"],
      "epochs": len(history),
      # With several members, throughput counts every member's examples.
      "examples_per_s": (spec.num_train * epochs_trained * members / train_s
                         if train_s > 0 else None),
      "train_s": train_s,
      # Seconds of training per epoch (shared by all members of a vectorized group).
      "train_s_per_epoch": train_s / epochs_trained if epochs_trained else None,
      "compile_s": timing["compile_s"],
      "wall_s": timing["wall_s"],
      "native_kernels": timing["native_kernels"],
      "seed": config.seed,
      "model": config.model.name,
      "data": spec.name,
      "num_train": spec.num_train,
      "num_val": spec.num_val,
      "num_test": spec.num_test,
      "data_notes": list(spec.notes),
      "trained_with": members,
  }
  # Cost of the compiled program (all members of a vectorized group together).
  results.update(cost.cost_report(size["flops_per_example"], results["examples_per_s"]))
  if exp.privacy:
    results.update(privacy_results(exp.privacy, last["step"]))
  return {k: v for k, v in results.items() if v is not None or k.startswith("test_")}
