"""Progress display: a rich progress bar with live metrics, or plain log lines."""

import sys
import time
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def format_row(row: Mapping[str, Any]) -> str:
  """One epoch's metrics as a short line."""
  parts = [f"epoch {row['epoch']}"]
  for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "epsilon",
              "examples_per_s"):
    if key in row and row[key] is not None:
      value = row[key]
      parts.append(f"{key} {value:,.0f}" if key == "examples_per_s" else f"{key} {value:.4f}")
  return "  ".join(parts)


class Reporter:
  """Shows training progress; ``quiet`` prints one line per epoch and nothing else.

  Args:
    total_steps: steps of the whole run.
    start_step: where this session starts (non-zero when resuming).
    quiet: plain lines instead of a live bar (for logs and CI).
  """

  def __init__(self, total_steps: int, start_step: int, quiet: bool,
               examples_per_step: int = 0):
    self.quiet = quiet
    self._examples_per_step = examples_per_step
    self._rate_mark = (time.monotonic(), start_step)
    self.console = Console(file=sys.stderr if quiet else sys.stdout, highlight=False)
    self._bar = None
    if not quiet:
      self._bar = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                           TextColumn("{task.fields[live]}"), TimeRemainingColumn(),
                           console=self.console, transient=True)
      self._task = self._bar.add_task("train", total=total_steps, completed=start_step, live="")
    self._last_refresh = 0.0

  def __enter__(self) -> "Reporter":
    if self._bar is not None:
      self._bar.start()
    return self

  def __exit__(self, *exc) -> None:
    if self._bar is not None:
      self._bar.stop()

  def wants_live_metrics(self) -> bool:
    """True at most twice a second, so fetching metrics from the device stays rare."""
    return self._bar is not None and time.monotonic() - self._last_refresh > 0.5

  def advance(self, step: int, live: Mapping[str, float] | None = None) -> None:
    if self._bar is None:
      return
    fields = {}
    if live is not None:
      now = time.monotonic()
      self._last_refresh = now
      text = "  ".join(f"{k} {v:,.4g}" for k, v in live.items())
      then, then_step = self._rate_mark
      if self._examples_per_step and step > then_step and now > then:
        rate = (step - then_step) * self._examples_per_step / (now - then)
        text += f"  {rate:,.0f} ex/s"
      self._rate_mark = (now, step)
      fields["live"] = text
    self._bar.update(self._task, completed=step, **fields)

  def log(self, message: str) -> None:
    self.console.print(message, soft_wrap=True)
