"""SIGTERM and SIGINT as a request to stop training after the current step."""

import signal
import threading

from jaxdl.errors import Preempted


class StopSignals:
  """Turns SIGTERM and SIGINT into a request to stop after the current step.

  Handlers are installed only in the main thread (Python allows no others).
  """

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.received: int | None = None
    self._previous = {}

  def __enter__(self) -> "StopSignals":
    if threading.current_thread() is threading.main_thread():
      for sig in self.SIGNALS:
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame) -> None:
    del frame
    self.received = signum

  def __exit__(self, *exc) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)

  def preempted(self, step: int) -> Preempted:
    return Preempted(f"stopped by {signal.Signals(self.received).name} at step {step}; a "
                     "checkpoint was written: rerun the same command to resume")
