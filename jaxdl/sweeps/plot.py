"""``jaxdl plot``: learning curves and hyperparameter-response figures as PNG files.

Learning curves show loss (and accuracy) per epoch for each group of a sweep:
the mean over its members (seeds) as a line and mean ± std as a band.
A response figure shows a result against one swept numeric axis, mean ± std
over seeds, on a log axis when the values span a factor of 3 or more.
"""

import json
import pathlib
from collections.abc import Sequence

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # Files only: no display needed.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxdl.errors import JaxdlError  # noqa: E402
from jaxdl.sweeps.report import REPETITION_AXES, default_metrics, load_rows, summarize  # noqa: E402


def _history(run: pathlib.Path) -> list[dict]:
  path = run / "metrics.jsonl"
  return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _label(values: dict) -> str:
  return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                   for k, v in values.items()) or "all runs"


def _draw_curves(ax, histories: dict[str, list[list[dict]]], metric: str) -> None:
  """Train (dashed) and validation (solid) ``metric`` per epoch: mean line, ±std band."""
  for i, (name, hs) in enumerate(histories.items()):
    hs = [h for h in hs if h]
    if not hs:
      continue
    epochs = min(len(h) for h in hs)
    x = np.arange(1, epochs + 1)
    for split, style in (("train", "--"), ("val", "-")):
      key = f"{split}_{metric}"
      if not all(key in row for h in hs for row in h[:epochs]):
        continue
      y = np.array([[row[key] for row in h[:epochs]] for h in hs])
      mean, std = y.mean(0), y.std(0)
      ax.plot(x, mean, style, color=f"C{i % 10}", label=f"{name} ({split})",
              marker="o" if epochs <= 30 else None, markersize=3)  # One epoch: still a point.
      if len(hs) > 1:
        ax.fill_between(x, mean - std, mean + std, color=f"C{i % 10}", alpha=0.15)


def learning_curves(folder: pathlib.Path, runs: dict[str, list[pathlib.Path]],
                    out: pathlib.Path) -> pathlib.Path:
  """One line (and band) per group: loss, and accuracy where there is one."""
  histories = {name: [_history(r) for r in members] for name, members in runs.items()}
  has_accuracy = any("train_accuracy" in h[0] for hs in histories.values() for h in hs if h)
  panels = [("loss", "loss (cross-entropy or MSE)")] + (
      [("accuracy", "accuracy (fraction correct)")] if has_accuracy else [])
  fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), squeeze=False)
  for ax, (metric, ylabel) in zip(axes[0], panels):
    _draw_curves(ax, histories, metric)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
  axes[0][0].legend(fontsize=7)
  n = max(len(v) for v in runs.values())
  fig.suptitle(f"{folder.name}: mean over {n} run(s) per group, band = ±1 std")
  fig.tight_layout()
  fig.savefig(out, dpi=120)
  plt.close(fig)
  return out


def _swept_axis(ax, values: np.ndarray) -> None:
  """A log x axis where the values span a factor of 3 or more; the values as ticks."""
  if values.min() > 0 and values.max() / values.min() >= 3:
    ax.set_xscale("log")
  if len(values) <= 8:
    ax.set_xticks(values, [f"{v:.3g}" for v in values])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())


def response(rows: list[dict], axis: str, metric: str, others: Sequence[str],
             out: pathlib.Path) -> pathlib.Path:
  """``metric`` against ``axis`` (mean ± std over the other members of each point)."""
  fig, ax = plt.subplots(figsize=(6, 4.2))
  lines = summarize(rows, list(others), []) if others else None
  for i, line in enumerate(lines or [None]):
    subset = rows if line is None else [r for r in rows if r["member"] in line.members]
    groups = summarize(subset, [axis], [metric])
    groups.sort(key=lambda g: g.values[axis])
    x = np.array([g.values[axis] for g in groups], float)
    mean = np.array([g.metrics[metric].mean for g in groups])
    std = np.array([g.metrics[metric].error_bar for g in groups])
    ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, color=f"C{i % 10}",
                label=None if line is None else _label(line.values))
  _swept_axis(ax, np.unique(np.array([r[axis] for r in rows], float)))
  ax.set_xlabel(axis)
  ax.set_ylabel(f"{metric} (mean ± std over seeds)")
  ax.grid(alpha=0.3)
  if lines:
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(out, dpi=120)
  plt.close(fig)
  return out


def plot(folder: str | pathlib.Path, out_dir: str | pathlib.Path | None = None,
         metric: str | None = None) -> list[pathlib.Path]:
  """Writes the figures of a sweep, tune or run folder; returns their paths."""
  folder = pathlib.Path(folder)
  out_dir = pathlib.Path(out_dir) if out_dir else folder / "plots"
  if (folder / "tune.json").exists():
    from jaxdl.sweeps.tune import plot_objective  # Optuna, only for tune folders.

    out_dir.mkdir(parents=True, exist_ok=True)
    return [plot_objective(folder, out_dir / "objective.png")]
  rows, axis_keys, _ = load_rows(folder)
  if not rows:
    raise JaxdlError(f"{folder}: no finished runs to plot")
  out_dir.mkdir(parents=True, exist_ok=True)
  by = [k for k in axis_keys if k not in REPETITION_AXES]
  written = [learning_curves(folder, _runs_by_group(folder, rows, axis_keys, by),
                             out_dir / "learning_curves.png")]
  metric = metric or (default_metrics(rows) or [None])[0]
  numeric = [axis for axis in by if all(_is_number(r.get(axis)) for r in rows)]
  for axis in numeric if metric else []:
    others = [k for k in by if k != axis]
    written.append(response(rows, axis, metric, others, out_dir / f"response_{axis}.png"))
  return written


def _runs_by_group(folder: pathlib.Path, rows: list[dict], axis_keys: Sequence[str],
                   by: Sequence[str]) -> dict[str, list[pathlib.Path]]:
  """The run folders of each group (a run folder is a group of itself)."""
  base = folder if axis_keys else folder.parent
  return {_label(g.values): [base / m for m in g.members] for g in summarize(rows, by, [])}


def _is_number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)
