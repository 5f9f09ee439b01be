"""The report's tables as text: Markdown, LaTeX (booktabs) and CSV, plain and pivoted.

Rendering only: the numbers, intervals and ranking come from report.py and
intervals.py.
"""

import csv
import io
import math
import re
from collections.abc import Sequence
from typing import Any

NOTE_CHARS = 200  # An error quoted in a note is cut at a word, near this many characters.


def fmt(x: float, digits: int) -> str:
  if x is None or math.isnan(x):
    return "–"
  return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.{digits}f}"


def value_text(v: Any) -> str:
  return f"{v:.4g}" if isinstance(v, float) else str(v)


def mean_std(s, digits: int, plus_minus: str = "±") -> str:
  if s is None:
    return "–"
  if math.isnan(s.std):
    return fmt(s.mean, digits)
  return f"{fmt(s.mean, digits)} {plus_minus} {fmt(s.std, digits)}"


def interval(s, digits: int) -> str:
  if s is None or not s.has_interval:
    return "–"
  return f"[{fmt(s.low, digits)}, {fmt(s.high, digits)}]"


def shorten(text: str, limit: int = NOTE_CHARS) -> str:
  """The first line of ``text``, cut at a word boundary with an ellipsis if longer."""
  line = text.strip().splitlines()[0] if text.strip() else ""
  if len(line) <= limit:
    return line
  cut = line[:limit].rsplit(" ", 1)[0]
  return cut.rstrip(",;:") + " …"


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#",
          "$": r"\$", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}"}


def latex_escape(text: Any) -> str:
  """``text`` with LaTeX's special characters escaped (one pass: no escape is escaped again)."""
  return re.sub(r"[\\&%_#$\{\}~]", lambda m: _LATEX[m.group(0)], str(text))


def _methods(groups, metric: str) -> list[str]:
  return sorted({g.metrics[metric].method for g in groups
                 if metric in g.metrics and g.metrics[metric].has_interval})


def interval_notes(groups, metrics: Sequence[str]) -> list[str]:
  """One note per metric naming how its intervals were made (and on what n)."""
  notes = []
  for m in metrics:
    methods = _methods(groups, m)
    if methods:
      notes.append(f"{m}: {'; '.join(methods)}")
  return notes


def failure_note(failures) -> str:
  if not failures:
    return ""
  named = "; ".join(f"{f.member}: {shorten(f.error)}" for f in failures)
  return f"{len(failures)} member(s) failed and are not in the means: {named}."


class Table:
  """One row per group, in the ranking's order.

  Args:
    groups, group_by, metrics: from report.summarize.
    ranking: from report.rank.
    failures: members that failed (named in the notes).
    digits: decimals.
  """

  def __init__(self, groups, group_by, metrics, ranking, failures, digits: int):
    self.groups, self.group_by, self.metrics = groups, list(group_by), list(metrics)
    self.ranking, self.failures, self.digits = ranking, list(failures), digits
    self.ranked = ranking.metric is not None
    self.with_ci = [m for m in metrics if _methods(groups, m)]
    self.with_seed_std = [m for m in metrics if m.startswith("test_") and any(
        m in g.metrics and not math.isnan(g.metrics[m].seed_std) for g in groups)]
    self.show_failed = any(g.failed for g in groups)

  def _cells(self, i: int, plus_minus: str, wrap) -> list[str]:
    g = self.groups[i]
    cells = [wrap(mean_std(g.metrics.get(m), self.digits, plus_minus), i in self.ranking.bold
                  and j == 0) for j, m in enumerate(self.metrics)]
    cells += [interval(g.metrics.get(m), self.digits) for m in self.with_ci]
    cells += [fmt(g.metrics[m].seed_std, self.digits) if m in g.metrics else "–"
              for m in self.with_seed_std]
    return cells

  def _front(self, i: int) -> list[str]:
    g = self.groups[i]
    return [*(value_text(g.values[k]) for k in self.group_by),
            *([self.ranking.rank.get(i, "–")] if self.ranked else []), str(len(g.members)),
            *([str(len(g.failed))] if self.show_failed else [])]

  def header(self) -> list[str]:
    return [*self.group_by, *(["rank"] if self.ranked else []), "runs",
            *(["failed"] if self.show_failed else []),
            *[f"{m} (mean ± std)" for m in self.metrics], *[f"{m} 95% CI" for m in self.with_ci],
            *[f"{m} std over seeds" for m in self.with_seed_std]]

  def notes(self) -> list[str]:
    lines = ["Mean ± std over each group's folds or splits (seeds averaged within each first), "
             "or over its runs on a single split; 95% intervals: "
             + "; ".join(interval_notes(self.groups, self.with_ci)) + "." if self.with_ci
             else "Mean ± std over each group's runs; no interval (too few runs)."]
    lines.append(self.ranking.note)
    lines.append(failure_note(self.failures))
    return [line for line in lines if line]

  def markdown(self) -> str:
    bold = lambda text, on: f"**{text}**" if on else text
    header = self.header()
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i in self.ranking.order:
      lines.append("| " + " | ".join([*self._front(i), *self._cells(i, "±", bold)]) + " |")
    return "\n".join(lines) + "\n\n" + "\n".join(self.notes()) + "\n"

  def latex(self) -> str:
    header = [latex_escape(h) for h in self.header()]
    header = [h.replace("±", r"$\pm$") for h in header]
    cols = "l" * (len(self.group_by) + self.ranked) + "r" * (len(header) - len(self.group_by)
                                                             - self.ranked)
    lines = [r"\begin{tabular}{" + cols + "}", r"\toprule", " & ".join(header) + r" \\",
             r"\midrule"]
    math_cell = lambda text, on: "--" if text == "–" else (
        f"$\\mathbf{{{text}}}$" if on else f"${text}$").replace(",", "{,}")
    # Means arrive wrapped by _cells; intervals ("[a, b]") are wrapped here; "–" is "--".
    plain = lambda c: math_cell(c, False) if c.startswith("[") or c == "–" else c
    for i in self.ranking.order:
      front = [latex_escape(c) for c in self._front(i)]
      lines.append(" & ".join([*front, *map(plain, self._cells(i, r"\pm", math_cell))])
                   + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    notes = [latex_escape(n) for n in self.notes()]
    return "\n".join(lines) + "\n" + "".join(f"% {n}\n" for n in notes) + (
        f"\\par\\footnotesize {latex_escape(failure_note(self.failures))}\n"
        if self.failures else "")

  def csv(self) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    stats = ("mean", "std", "ci95_low", "ci95_high", "ci_method", "n")
    writer.writerow([*self.group_by, "rank", "runs", "n_failed", "failed_members",
                     *[f"{m}_{s}" for m in self.metrics for s in stats], "best"])
    for i in self.ranking.order:
      g = self.groups[i]
      numbers = []
      for m in self.metrics:
        s = g.metrics.get(m)
        numbers += [s.mean, s.std, s.low, s.high, s.method, s.n] if s else [math.nan] * 4 + [
            "", 0]
      writer.writerow([*(g.values[k] for k in self.group_by), self.ranking.rank.get(i, ""),
                       len(g.members), len(g.failed), ";".join(g.failed), *numbers,
                       int(i in self.ranking.bold)])
    return out.getvalue()


class Pivot:
  """Groups keyed by (row value, column value) as a rows x columns table of one metric."""

  def __init__(self, groups, rows_key: str, cols_key: str, metric: str, ranking, failures,
               digits: int):
    self.metric, self.ranking, self.failures, self.digits = metric, ranking, failures, digits
    self.rows = list(dict.fromkeys(g.values[rows_key] for g in groups))
    self.cols = list(dict.fromkeys(g.values[cols_key] for g in groups))
    self.keys = rows_key, cols_key
    self.cell = {(g.values[rows_key], g.values[cols_key]): i for i, g in enumerate(groups)}
    self.groups = groups

  def _text(self, row, col, plus_minus: str, bold) -> str:
    i = self.cell.get((row, col))
    if i is None:
      return "–"
    s = self.groups[i].metrics.get(self.metric)
    if s is None:
      return f"failed ({len(self.groups[i].failed)})"
    tie = "=" if self.ranking.rank.get(i) == "1=" else ""
    text = f"{mean_std(s, self.digits, plus_minus)} {interval(s, self.digits)}{tie}"
    return bold(text, i in self.ranking.bold)

  def notes(self) -> list[str]:
    lines = [f"Each cell: {self.metric} mean ± std over the folds (or runs) of one "
             f"configuration, and its 95% interval: "
             + "; ".join(interval_notes(self.groups, [self.metric])) + ".",
             self.ranking.note.replace("dataset", str(self.keys[1])) + (
                 " '=' marks a row not significantly different from its column's best."
                 if any(r == "1=" for r in self.ranking.rank.values()) else ""),
             failure_note(self.failures)]
    return [line for line in lines if line]

  def render(self, fmt_name: str) -> str:
    if fmt_name == "latex":
      cell = lambda text, on: f"$\\mathbf{{{text}}}$" if on else f"${text}$"
      lines = [r"\begin{tabular}{l" + "r" * len(self.cols) + "}", r"\toprule",
               " & ".join([latex_escape(self.keys[0]), *map(latex_escape, self.cols)]) + r" \\",
               r"\midrule"]
      for row in self.rows:
        texts = [self._text(row, col, r"\pm", cell).replace("–", "--") for col in self.cols]
        lines.append(" & ".join([latex_escape(row), *texts]) + r" \\")
      lines += [r"\bottomrule", r"\end{tabular}"]
      return "\n".join(lines) + "\n" + "".join(f"% {latex_escape(n)}\n" for n in self.notes())
    bold = lambda text, on: f"**{text}**" if on else text
    lines = ["| " + " | ".join([self.keys[0], *map(str, self.cols)]) + " |",
             "|" + "---|" * (len(self.cols) + 1)]
    for row in self.rows:
      lines.append("| " + " | ".join([str(row), *(self._text(row, col, "±", bold)
                                                  for col in self.cols)]) + " |")
    return "\n".join(lines) + "\n\n" + "\n".join(self.notes()) + "\n"


def comparisons_markdown(pairs: Sequence[tuple[str, Any]], digits: int) -> str:
  """Paired comparisons as a Markdown table, with what each column means."""
  header = ["comparison", "metric", "difference", "95% CI", "p", "p (Holm)", "Wilcoxon p",
            "effect", "n", "test"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for label, c in pairs:
    wilcoxon = "–" if c.wilcoxon_p is None else f"{c.wilcoxon_p:.3g}"
    lines.append("| " + " | ".join([
        label, c.metric, f"{c.difference:+.{digits}f}",
        f"[{fmt(c.low, digits)}, {fmt(c.high, digits)}]",
        "–" if math.isnan(c.p) else f"{c.p:.3g}",
        "–" if c.p_adjusted is None else f"{c.p_adjusted:.3g}", wilcoxon,
        "–" if math.isnan(c.effect) else f"{c.effect:+.2f}", str(c.n), c.test]) + " |")
  return ("\n".join(lines) + "\n\nDifference: the first minus the second, paired by split, fold "
          "and seed. Effect: Cohen's d_z over the paired folds, or on one split (b - c) / (b + c) "
          "of the discordant test examples. p (Holm): corrected over the comparisons in this "
          "table.\n")
