"""Where a run's numbers go besides metrics.jsonl: TensorBoard and Weights & Biases.

``metrics.jsonl`` is the source of truth; these writers copy its rows at the
loop's edges (after an epoch's checkpoint, never inside jitted code):

  TensorBoard: event files in ``RUN/tb/`` written with the ``tensorboard``
    package's own writer (no TensorFlow): every row's numbers as scalars at the
    row's step, and the run's hyperparameters for the HParams dashboard, so the
    members of a sweep line up as one table. ``tensorboard --logdir runs/``
    shows each run folder (each sweep member) as a run.
  Weights & Biases (``log.wandb=true``; the ``.[wandb]`` extra): the same rows,
    the config, the sweep's name as the group; ``WANDB_MODE=offline`` works with
    no network. The W&B run id is kept in the run folder, so a resumed run
    continues the same W&B run.

Resuming replays nothing twice: each writer remembers the last epoch it wrote
(``RUN/tb/logged.json``; W&B's own resume) and writes only the rows after it.
"""

import json
import os
import pathlib
import secrets
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import ml_collections
import numpy as np

from jaxdl.configs.loading import config_to_dict, flatten
from jaxdl.errors import ConfigError


class Writer(Protocol):
  """What the loop calls: one row per epoch (and running means every N steps)."""

  def rows(self, rows: Sequence[Mapping[str, Any]]) -> None:
    ...

  def running(self, step: int, values: Mapping[str, float]) -> None:
    ...

  def close(self) -> None:
    ...


def hyperparameters(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The run's config as flat ``key: value`` pairs TensorBoard and W&B can show."""
  out = {}
  for key, value in flatten(config_to_dict(config)).items():
    if key == "experiment":
      continue
    out[key] = value if isinstance(value, (bool, int, float, str)) else json.dumps(value)
  return out


def _scalars(row: Mapping[str, Any]) -> dict[str, float]:
  """A metrics.jsonl row's numbers, named ``train/loss``, ``val/accuracy``, ..."""
  out = {}
  for key, value in row.items():
    if key in ("epoch", "step") or not isinstance(value, (int, float)) or isinstance(value, bool):
      continue
    split, _, name = key.partition("_")
    out[f"{split}/{name}" if split in ("train", "val") and name else key] = float(value)
  return out


class EventFile:
  """One TensorBoard event file: tensorboard's record format and protos on a plain file.

  Written here because tensorboard's own writers (``summary.Writer``,
  ``EventFileWriter``) import TensorFlow for its file layer whenever it is
  installed (seconds, and TensorFlow's threads and logs in the run's process);
  these are the same records, and TensorFlow is never loaded.
  """

  def __init__(self, folder: pathlib.Path, suffix: str = ""):
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    name = (f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
            f"{os.getpid()}.{time.monotonic_ns()}{suffix}")
    self._file = open(folder / name, "wb")
    self._records = RecordWriter(self._file)
    self.add(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))

  def add(self, event) -> None:
    self._records.write(event.SerializeToString())

  def scalar(self, tag: str, value: float, step: int) -> None:
    """A scalar as a ``simple_value``: TensorBoard's dashboard shows it, and so does every
    reader (``EventAccumulator.Tags()['scalars']``, pandas exporters), which a tensor
    summary of the scalars plugin is not to the older ones."""
    from tensorboard.compat.proto import event_pb2

    event = event_pb2.Event(wall_time=time.time(), step=step)
    event.summary.value.add(tag=tag, simple_value=float(np.float32(value)))
    self.add(event)

  def flush(self) -> None:
    self._file.flush()

  def close(self) -> None:
    self._file.close()


class TensorBoardWriter:
  """Event files in ``folder`` (a run folder's ``tb/``)."""

  def __init__(self, folder: pathlib.Path, hparams: Mapping[str, Any],
               learning_rate: Callable[[int], float] | None = None):
    """``learning_rate(step)``: the rate of the update that made ``step``, logged with it."""
    self.folder = folder
    self._learning_rate = learning_rate
    folder.mkdir(parents=True, exist_ok=True)
    self._marker = folder / "logged.json"
    self._last = json.loads(self._marker.read_text())["epoch"] if self._marker.exists() else 0
    self._writer = EventFile(folder)
    if not self._last:
      _write_hparams(folder, hparams)

  def rows(self, rows: Sequence[Mapping[str, Any]]) -> None:
    new = [row for row in rows if row["epoch"] > self._last]
    for row in new:
      step = int(row["step"])
      for tag, value in self._with_rate(_scalars(row), step, "train/").items():
        self._writer.scalar(tag, value, step=step)
      self._writer.scalar("epoch", row["epoch"], step=step)  # Steps to epochs, in the UI.
    if new:
      self._writer.flush()
      self._last = new[-1]["epoch"]
      # Atomically (a temporary file, then a rename): a kill between open and write left an
      # empty marker, and resuming the run failed on it.
      tmp = self._marker.with_name(self._marker.name + ".tmp")
      tmp.write_text(json.dumps({"epoch": self._last}))
      os.replace(tmp, self._marker)

  def running(self, step: int, values: Mapping[str, float]) -> None:
    running = {f"train_running/{name}": value for name, value in values.items()}
    for tag, value in self._with_rate(running, step, "train_running/").items():
      self._writer.scalar(tag, value, step=step)
    self._writer.flush()

  def _with_rate(self, scalars: dict[str, float], step: int, prefix: str) -> dict[str, float]:
    if self._learning_rate is None or step < 1:
      return scalars
    return {**scalars, f"{prefix}learning_rate": self._learning_rate(step)}

  def close(self) -> None:
    self._writer.close()


def _write_hparams(folder: pathlib.Path, hparams: Mapping[str, Any]) -> None:
  """The HParams plugin's session-start record (built from tensorboard's protos, no TF)."""
  from tensorboard.compat.proto import event_pb2, summary_pb2
  from tensorboard.plugins.hparams import metadata, plugin_data_pb2

  info = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
  for key, value in hparams.items():
    if isinstance(value, bool):
      info.hparams[key].bool_value = value
    elif isinstance(value, (int, float)):
      info.hparams[key].number_value = float(value)
    else:
      info.hparams[key].string_value = str(value)
  content = plugin_data_pb2.HParamsPluginData(session_start_info=info,
                                              version=metadata.PLUGIN_DATA_VERSION)
  summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(
      tag=metadata.SESSION_START_INFO_TAG,
      metadata=metadata.create_summary_metadata(content))])
  writer = EventFile(folder, suffix=".hparams")
  writer.add(event_pb2.Event(wall_time=time.time(), summary=summary))
  writer.close()


class WandbWriter:
  """A Weights & Biases run per jaxdl run (resumed with it)."""

  def __init__(self, run_folder: pathlib.Path, config: ml_collections.ConfigDict,
               hparams: Mapping[str, Any]):
    try:
      import wandb
    except ImportError:
      raise ConfigError("log.wandb=true needs Weights & Biases: pip install -e '.[wandb]' "
                        "(or set log.wandb=false)") from None
    id_file = run_folder / "wandb_id.txt"
    run_id = id_file.read_text().strip() if id_file.exists() else secrets.token_hex(4)
    id_file.write_text(run_id)
    self._run = wandb.init(project=config.log.wandb_project, entity=config.log.wandb_entity or None,
                           group=config.log.wandb_group or None, name=run_folder.name,
                           id=run_id, resume="allow", dir=str(run_folder), config=dict(hparams),
                           reinit="create_new")
    self._last = int(self._run.summary.get("epoch", 0) or 0)

  def rows(self, rows: Sequence[Mapping[str, Any]]) -> None:
    for row in rows:
      if row["epoch"] > self._last:
        self._run.log({**_scalars(row), "epoch": row["epoch"]}, step=int(row["step"]))
        self._last = row["epoch"]

  def running(self, step: int, values: Mapping[str, float]) -> None:
    self._run.log({f"train_running/{k}": v for k, v in values.items()}, step=step)

  def close(self) -> None:
    self._run.finish()


def learning_rates(optim: ml_collections.ConfigDict, steps_per_epoch: int, num_epochs: int,
                   experiment: str = "") -> Callable[[int], float]:
  """``step -> the learning rate of the update that made it`` (the peak times the schedule
  at the update's count, ``step - 1``), as the optimizer chain computes it (optim/build.py)."""
  from jaxdl.optim.schedules import schedule_shape

  shape = schedule_shape(optim, steps_per_epoch * num_epochs, steps_per_epoch, experiment)
  peak = float(optim.learning_rate)
  return lambda step: peak * (float(shape(step - 1)) if shape is not None else 1.0)


def open_writers(config: ml_collections.ConfigDict, run_folder: pathlib.Path,
                 steps_per_epoch: int = 0) -> list[Writer]:
  """The writers ``config.log`` asks for, for one run folder (process 0 only); with
  ``steps_per_epoch``, TensorBoard also gets the learning rate of each logged step."""
  hparams = hyperparameters(config)
  writers: list[Writer] = []
  if config.log.tensorboard:
    rate = (learning_rates(config.optim, steps_per_epoch, config.num_epochs, config.experiment)
            if steps_per_epoch else None)
    writers.append(TensorBoardWriter(run_folder / "tb", hparams, rate))
  if config.log.wandb:
    writers.append(WandbWriter(run_folder, config, hparams))
  return writers
