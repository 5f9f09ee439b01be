"""``jaxdl report``: a sweep's results grouped over seeds, as a table for a paper.

Members that share every swept value but the seed (or the ``--group-by``
axes given) form a group; each metric is reported as mean ± sample standard
deviation, with the 95% confidence interval of the mean from Student's t
(n - 1 degrees of freedom). The best group by the first metric is marked.
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
from jaxdl.train.run_folder import read_json

FORMATS = ("markdown", "latex", "csv")


@dataclasses.dataclass(frozen=True)
class Summary:
  """One metric over a group's members."""

  n: int
  mean: float
  std: float  # Sample std (ddof=1); 0 for one member.
  ci_low: float  # 95% CI of the mean; NaN for one member.
  ci_high: float

  @classmethod
  def of(cls, values: Sequence[float]) -> "Summary":
    x = np.asarray(values, np.float64)
    n, mean = len(x), float(np.mean(x))
    if n < 2:
      return cls(n, mean, 0.0, math.nan, math.nan)
    std = float(np.std(x, ddof=1))
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return cls(n, mean, std, mean - half, mean + half)


@dataclasses.dataclass(frozen=True)
class Group:
  values: dict[str, Any]  # The group-by axes' values.
  members: tuple[str, ...]
  metrics: dict[str, Summary]


def load_rows(folder: str | pathlib.Path) -> tuple[list[dict[str, Any]], list[str]]:
  """Finished members of a sweep folder (or the one run of a run folder), and the axes."""
  folder = pathlib.Path(folder)
  if (folder / "sweep.json").exists():
    sweep = read_json(folder / "sweep.json")
    axis_keys = [a["key"] for a in sweep["axes"]]
    rows = []
    for member in sweep["members"]:
      path = folder / member["name"] / "results.json"
      if member["status"] == "done" and path.exists():
        results = read_json(path)
        rows.append({"member": member["name"], **member["overrides"],
                     **{k: v for k, v in results.items() if k not in axis_keys}})
    return rows, axis_keys
  if (folder / "results.json").exists():
    return [{"member": folder.name, **read_json(folder / "results.json")}], []
  raise JaxdlError(f"{folder} holds neither sweep.json nor results.json; pass a sweep or run "
                   "folder")


def higher_is_better(metric: str) -> bool:
  return "accuracy" in metric or metric.endswith("per_s")


def default_metrics(rows: Sequence[dict[str, Any]]) -> list[str]:
  candidates = ("test_accuracy", "test_mse", "test_loss")
  return [m for m in candidates if rows and all(isinstance(r.get(m), (int, float)) for r in rows)]


def summarize(rows: Sequence[dict[str, Any]], group_by: Sequence[str],
              metrics: Sequence[str]) -> list[Group]:
  """Groups rows by the ``group_by`` values (first-seen order) and summarises each metric."""
  for metric in metrics:
    missing = [r["member"] for r in rows if not isinstance(r.get(metric), (int, float))]
    if missing:
      raise JaxdlError(f"metric {metric!r} is missing from {missing[0]}'s results")
  buckets: dict[tuple, list[dict[str, Any]]] = {}
  for row in rows:
    buckets.setdefault(tuple(repr(row.get(k)) for k in group_by), []).append(row)
  return [Group({k: members[0].get(k) for k in group_by}, tuple(r["member"] for r in members),
                {m: Summary.of([r[m] for r in members]) for m in metrics})
          for members in buckets.values()]


def best_group(groups: Sequence[Group], metric: str) -> int:
  means = [g.metrics[metric].mean for g in groups]
  return int(np.argmax(means) if higher_is_better(metric) else np.argmin(means))


def _fmt(x: float, digits: int) -> str:
  if math.isnan(x):
    return "–"
  return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.{digits}f}"


def _cell(s: Summary, digits: int, plus_minus: str) -> tuple[str, str]:
  return (f"{_fmt(s.mean, digits)} {plus_minus} {_fmt(s.std, digits)}",
          f"[{_fmt(s.ci_low, digits)}, {_fmt(s.ci_high, digits)}]")


def _value(v: Any) -> str:
  return f"{v:.4g}" if isinstance(v, float) else str(v)


def render(groups: Sequence[Group], group_by: Sequence[str], metrics: Sequence[str],
           fmt: str = "markdown", digits: int = 4) -> str:
  """The table as Markdown, LaTeX (booktabs) or CSV."""
  if fmt not in FORMATS:
    raise JaxdlError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
  if not groups:
    raise JaxdlError("no finished members to report")
  best = best_group(groups, metrics[0])
  if fmt == "csv":
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*group_by, "n", *[f"{m}_{s}" for m in metrics
                                       for s in ("mean", "std", "ci95_low", "ci95_high")], "best"])
    for i, g in enumerate(groups):
      writer.writerow([*(g.values[k] for k in group_by), len(g.members),
                       *[v for m in metrics for v in (g.metrics[m].mean, g.metrics[m].std,
                                                      g.metrics[m].ci_low, g.metrics[m].ci_high)],
                       int(i == best)])
    return out.getvalue()
  if fmt == "markdown":
    # A CI only where members differ (a parameter count has none).
    with_ci = [m for m in metrics if any(g.metrics[m].std > 0 for g in groups)]
    header = [*group_by, "n", *[f"{m} (mean ± std)" for m in metrics],
              *[f"{m} 95% CI" for m in with_ci]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, g in enumerate(groups):
      cells = {m: _cell(g.metrics[m], digits, "±") for m in metrics}
      means = [f"**{cells[m][0]}**" if i == best and m == metrics[0] else cells[m][0]
               for m in metrics]
      lines.append("| " + " | ".join([*(_value(g.values[k]) for k in group_by),
                                       str(len(g.members)), *means,
                                       *(cells[m][1] for m in with_ci)]) + " |")
    note = (f"\nMean ± sample std over each group's members; 95% CI of the mean (Student's t). "
            f"Best by {metrics[0]} in bold.\n")
    return "\n".join(lines) + "\n" + note
  esc = lambda t: str(t).replace("_", r"\_").replace("%", r"\%")
  cols = "l" * len(group_by) + "r" * (1 + len(metrics))
  lines = [r"\begin{tabular}{" + cols + "}", r"\toprule",
           " & ".join([*(esc(k) for k in group_by), "$n$", *(esc(m) for m in metrics)]) + r" \\",
           r"\midrule"]
  for i, g in enumerate(groups):
    cells = []
    for m in metrics:
      s = g.metrics[m]
      cell = f"{_fmt(s.mean, digits)} \\pm {_fmt(s.std, digits)}".replace(",", "{,}")
      cells.append(f"$\\mathbf{{{cell}}}$" if i == best and m == metrics[0] else f"${cell}$")
    lines.append(" & ".join([*(esc(_value(g.values[k])) for k in group_by), str(len(g.members)),
                             *cells]) + r" \\")
  lines += [r"\bottomrule", r"\end{tabular}"]
  return "\n".join(lines) + "\n"


def report(folder: str | pathlib.Path, fmt: str = "markdown", group_by: Sequence[str] | None = None,
           metrics: Sequence[str] | None = None) -> str:
  """Loads ``folder`` and renders its table (grouped over seeds unless ``group_by`` is given)."""
  rows, axis_keys = load_rows(folder)
  if not rows:
    raise JaxdlError(f"{folder}: no finished members yet")
  group_by = list(group_by) if group_by else [k for k in axis_keys if k != "seed"]
  unknown = [k for k in group_by if all(k not in r for r in rows)]
  if unknown:
    raise JaxdlError(f"--group-by {unknown[0]!r} is not a swept axis or result; axes: "
                     f"{', '.join(axis_keys) or 'none'}")
  metrics = list(metrics) if metrics else default_metrics(rows)
  return render(summarize(rows, group_by, metrics), group_by, metrics, fmt)
