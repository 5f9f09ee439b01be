"""``jaxdl report``: a sweep's results grouped over seeds (and folds), as a table for a paper.

Members that share every swept value but the seed and the cross-validation
fold (or the ``--group-by`` axes given) form a group. Groups are ranked by the
runs' selection metric (a validation metric: the test set never chooses), and
the test metrics of the selected checkpoints stand beside it. Each metric is
the mean ± sample standard deviation with the 95% confidence interval of the
mean (Student's t, n - 1 degrees of freedom), clipped to the metric's range
(accuracies to [0, 1]); a group of one has neither. Members that failed (a
non-finite loss, an error) are counted per group and named, never dropped
silently.
"""

import csv
import dataclasses
import io
import math
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from jaxdl.errors import JaxdlError
from jaxdl.training.run_folder import read_json
from jaxdl.training.selection import higher_is_better

FORMATS = ("markdown", "latex", "csv")
# Axes averaged over by default: repetitions of one setting.
REPETITION_AXES = ("seed", "data.fold")


def metric_range(metric: str) -> tuple[float, float]:
  """The values a metric can take (a CI is clipped to them)."""
  if "mcc" in metric:
    return -1.0, 1.0
  if any(word in metric for word in ("accuracy", "f1", "top")):
    return 0.0, 1.0
  if any(word in metric for word in ("loss", "mse")):
    return 0.0, math.inf
  return -math.inf, math.inf


@dataclasses.dataclass(frozen=True)
class Summary:
  """One metric over a group's members."""

  n: int
  mean: float
  std: float  # Sample std (ddof=1); NaN for one member.
  ci_low: float  # 95% CI of the mean, clipped to the metric's range; NaN for one member.
  ci_high: float

  @classmethod
  def of(cls, values: Sequence[float],
         bounds: tuple[float, float] = (-math.inf, math.inf)) -> "Summary":
    x = np.asarray(values, np.float64)
    n, mean = len(x), float(np.mean(x))
    if n < 2:
      return cls(n, mean, math.nan, math.nan, math.nan)
    std = float(np.std(x, ddof=1))
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return cls(n, mean, std, max(mean - half, bounds[0]), min(mean + half, bounds[1]))

  @property
  def error_bar(self) -> float:
    """The std to draw (0 for a single member, which has none)."""
    return 0.0 if self.n < 2 else self.std


@dataclasses.dataclass(frozen=True)
class Group:
  values: dict[str, Any]  # The group-by axes' values.
  members: tuple[str, ...]
  metrics: dict[str, Summary]
  failed: tuple[str, ...] = ()  # Members of this group that did not finish.


@dataclasses.dataclass(frozen=True)
class Failure:
  member: str
  values: dict[str, Any]  # Its swept values.
  error: str


def load_rows(folder: str | pathlib.Path
              ) -> tuple[list[dict[str, Any]], list[str], list[Failure]]:
  """A sweep folder's finished members, its axes, and its failed members.

  A run folder gives its one run and no axes.
  """
  folder = pathlib.Path(folder)
  if (folder / "sweep.json").exists():
    sweep = read_json(folder / "sweep.json")
    axis_keys = [a["key"] for a in sweep["axes"]]
    rows, failures = [], []
    for member in sweep["members"]:
      path = folder / member["name"] / "results.json"
      if path.exists():  # Finished, whatever the status a (still running) shard last wrote.
        results = read_json(path)
        rows.append({"member": member["name"], **member["overrides"],
                     **{k: v for k, v in results.items() if k not in axis_keys}})
      elif member["status"] == "failed":
        failures.append(Failure(member["name"], member["overrides"],
                                member.get("error", "failed")))
    return rows, axis_keys, failures
  if (folder / "results.json").exists():
    return [{"member": folder.name, **read_json(folder / "results.json")}], [], []
  raise JaxdlError(f"{folder} holds neither sweep.json nor results.json; pass a sweep or run "
                   "folder")


def default_metrics(rows: Sequence[dict[str, Any]]) -> list[str]:
  """The selection (validation) metric first, then the selected checkpoints' test metrics."""
  present = lambda m: rows and all(isinstance(r.get(m), (int, float)) for r in rows)
  selection = {r.get("selection_metric") for r in rows}
  first = [m for m in selection if isinstance(m, str) and m != "last" and present(m)]
  tests = [m for m in ("test_accuracy", "test_mse", "test_loss") if present(m)]
  return first[:1] + tests if len(selection) == 1 else tests


def _check_metrics(rows: Sequence[dict[str, Any]], metrics: Sequence[str]) -> None:
  for metric in metrics:
    missing = [r["member"] for r in rows if not isinstance(r.get(metric), (int, float))]
    if missing:
      raise JaxdlError(f"metric {metric!r} is missing from {missing[0]}'s results")


def summarize(rows: Sequence[dict[str, Any]], group_by: Sequence[str], metrics: Sequence[str],
              failures: Sequence[Failure] = ()) -> list[Group]:
  """Groups rows (and failures) by the ``group_by`` values, in first-seen order."""
  _check_metrics(rows, metrics)
  key = lambda values: tuple(repr(values.get(k)) for k in group_by)
  buckets: dict[tuple, list[dict[str, Any]]] = {}
  values: dict[tuple, dict[str, Any]] = {}
  for row in rows:
    buckets.setdefault(key(row), []).append(row)
    values.setdefault(key(row), row)
  failed: dict[tuple, list[str]] = {}
  for failure in failures:  # A group may have failed members only.
    failed.setdefault(key(failure.values), []).append(failure.member)
    buckets.setdefault(key(failure.values), [])
    values.setdefault(key(failure.values), failure.values)
  return [Group({k: values[bucket].get(k) for k in group_by},
                tuple(r["member"] for r in members),
                {m: Summary.of([r[m] for r in members], metric_range(m))
                 for m in (metrics if members else ())},
                tuple(failed.get(bucket, ())))
          for bucket, members in buckets.items()]


def best_group(groups: Sequence[Group], metric: str) -> int | None:
  scored = [(i, g.metrics[metric].mean) for i, g in enumerate(groups) if metric in g.metrics]
  if not scored:
    return None
  pick = max if higher_is_better(metric) else min
  return pick(scored, key=lambda item: item[1])[0]


def _fmt(x: float, digits: int) -> str:
  if math.isnan(x):
    return "–"
  return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.{digits}f}"


def _mean_std(s: Summary | None, digits: int, plus_minus: str) -> str:
  if s is None:
    return "–"
  if s.n < 2:
    return _fmt(s.mean, digits)
  return f"{_fmt(s.mean, digits)} {plus_minus} {_fmt(s.std, digits)}"


def _ci(s: Summary | None, digits: int) -> str:
  if s is None or s.n < 2:
    return "–"
  return f"[{_fmt(s.ci_low, digits)}, {_fmt(s.ci_high, digits)}]"


def _value(v: Any) -> str:
  return f"{v:.4g}" if isinstance(v, float) else str(v)


def _render_csv(groups, group_by, metrics, best) -> str:
  out = io.StringIO()
  writer = csv.writer(out)
  writer.writerow([*group_by, "n", "n_failed",
                   *[f"{m}_{s}" for m in metrics for s in ("mean", "std", "ci95_low", "ci95_high")],
                   "best"])
  for i, g in enumerate(groups):
    numbers = []
    for m in metrics:
      s = g.metrics.get(m)
      numbers += [s.mean, s.std, s.ci_low, s.ci_high] if s else [math.nan] * 4
    writer.writerow([*(g.values[k] for k in group_by), len(g.members), len(g.failed), *numbers,
                     int(i == best)])
  return out.getvalue()


def _notes(groups: Sequence[Group], metrics: Sequence[str], failures: Sequence[Failure]) -> str:
  ranked = metrics[0]
  lines = [f"Mean ± sample std over each group's members; 95% CI of the mean (Student's t, "
           f"clipped to the metric's range); a group of one has neither. Groups are ranked by "
           f"{ranked}" + (" (validation: model selection never looks at test data)"
                          if ranked.startswith("val_") else "") + "; the best is in bold."]
  if failures:
    named = "; ".join(f"{f.member}: {f.error.splitlines()[0][:160]}" for f in failures)
    lines.append(f"{len(failures)} member(s) failed and are not in the means: {named}.")
  return "\n".join(lines) + "\n"


def _varies(groups: Sequence[Group], metric: str) -> bool:
  """Whether any group's members differ in ``metric`` (a parameter count has no CI)."""
  return any(metric in g.metrics and g.metrics[metric].n > 1 and g.metrics[metric].std > 0
             for g in groups)


def _render_markdown(groups, group_by, metrics, best, failures, digits) -> str:
  with_ci = [m for m in metrics if _varies(groups, m)]
  show_failed = any(g.failed for g in groups)
  header = [*group_by, "n", *(["failed"] if show_failed else []),
            *[f"{m} (mean ± std)" for m in metrics], *[f"{m} 95% CI" for m in with_ci]]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for i, g in enumerate(groups):
    means = [_mean_std(g.metrics.get(m), digits, "±") for m in metrics]
    if i == best:
      means[0] = f"**{means[0]}**"
    lines.append("| " + " | ".join([*(_value(g.values[k]) for k in group_by), str(len(g.members)),
                                     *([str(len(g.failed))] if show_failed else []), *means,
                                     *(_ci(g.metrics.get(m), digits) for m in with_ci)]) + " |")
  return "\n".join(lines) + "\n\n" + _notes(groups, metrics, failures)


def _render_latex(groups, group_by, metrics, best, digits) -> str:
  esc = lambda t: str(t).replace("_", r"\_").replace("%", r"\%")
  show_failed = any(g.failed for g in groups)
  cols = "l" * len(group_by) + "r" * (1 + show_failed + 2 * len(metrics))
  header = [*(esc(k) for k in group_by), "$n$", *(["failed"] if show_failed else []),
            *(h for m in metrics for h in (esc(m), "95\\% CI"))]
  lines = [r"\begin{tabular}{" + cols + "}", r"\toprule", " & ".join(header) + r" \\",
           r"\midrule"]
  for i, g in enumerate(groups):
    cells = []
    for j, m in enumerate(metrics):
      s = g.metrics.get(m)
      cell = _mean_std(s, digits, r"\pm").replace(",", "{,}")
      cells.append(f"$\\mathbf{{{cell}}}$" if i == best and j == 0 else f"${cell}$")
      tex = lambda x: _fmt(x, digits).replace(",", "{,}")
      cells.append(f"$[{tex(s.ci_low)}, {tex(s.ci_high)}]$" if s and s.n > 1 else "–")
    lines.append(" & ".join([*(esc(_value(g.values[k])) for k in group_by), str(len(g.members)),
                             *([str(len(g.failed))] if show_failed else []), *cells]) + r" \\")
  lines += [r"\bottomrule", r"\end{tabular}"]
  return "\n".join(lines) + "\n"


def render(groups: Sequence[Group], group_by: Sequence[str], metrics: Sequence[str],
           fmt: str = "markdown", digits: int = 4, failures: Sequence[Failure] = ()) -> str:
  """The table as Markdown, LaTeX (booktabs) or CSV; the best group by ``metrics[0]`` marked."""
  if fmt not in FORMATS:
    raise JaxdlError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
  if not groups:
    raise JaxdlError("no finished members to report")
  best = best_group(groups, metrics[0])
  if fmt == "csv":
    return _render_csv(groups, group_by, metrics, best)
  if fmt == "markdown":
    return _render_markdown(groups, group_by, metrics, best, failures, digits)
  return _render_latex(groups, group_by, metrics, best, digits)


def report(folder: str | pathlib.Path, fmt: str = "markdown", group_by: Sequence[str] | None = None,
           metrics: Sequence[str] | None = None) -> str:
  """Loads ``folder`` and renders its table (grouped over seeds and folds unless ``group_by``).

  A ``jaxdl tune`` folder gives its trials, the best by validation and the importances.
  """
  if (pathlib.Path(folder) / "tune.json").exists():
    from jaxdl.sweeps.tune import tune_report  # Optuna, only for tune folders.

    return tune_report(pathlib.Path(folder))
  rows, axis_keys, failures = load_rows(folder)
  if not rows:
    detail = f" ({len(failures)} failed: {failures[0].error})" if failures else ""
    raise JaxdlError(f"{folder}: no finished members yet{detail}")
  group_by = _group_keys(rows, axis_keys, group_by)
  metrics = list(metrics) if metrics else default_metrics(rows)
  if not metrics:
    raise JaxdlError(f"{folder}: no metric is in every member's results; name them with --metric")
  table = render(summarize(rows, group_by, metrics, failures), group_by, metrics, fmt,
                 failures=failures)
  unfinished = _unfinished(pathlib.Path(folder), len(rows) + len(failures))
  if unfinished and fmt == "markdown":
    table += (f"{unfinished} member(s) have not finished yet (pending or running, e.g. in "
              "other shards): the table covers the finished ones.\n")
  return table


def _group_keys(rows: list[dict], axis_keys: Sequence[str],
                group_by: Sequence[str] | None) -> list[str]:
  """``group_by``, checked against the rows; by default every swept axis but the repetitions."""
  keys = list(group_by) if group_by else [k for k in axis_keys if k not in REPETITION_AXES]
  unknown = [k for k in keys if all(k not in r for r in rows)]
  if unknown:
    raise JaxdlError(f"--group-by {unknown[0]!r} is not a swept axis or result; axes: "
                     f"{', '.join(axis_keys) or 'none'}")
  return keys


def _unfinished(folder: pathlib.Path, accounted: int) -> int:
  """Members of a sweep that neither finished nor failed."""
  if not (folder / "sweep.json").exists():
    return 0
  return len(read_json(folder / "sweep.json")["members"]) - accounted
