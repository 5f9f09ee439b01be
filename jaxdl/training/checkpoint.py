"""Checkpoints of the train state and the loop's host-side progress, via orbax.

Each checkpoint holds two items: ``state`` (the TrainState pytree) and
``progress`` (JSON: the metrics history so far, the partial epoch's metric
sums and the time spent), so a resumed run continues exactly where the saved
one stood. Orbax writes into a temporary folder and renames it when complete,
so a crash mid-write never replaces the last good checkpoint.

Two rules decide what is kept: the latest ``keep_latest`` checkpoints (to
resume), and the best epoch-end checkpoint by the run's ``Selection``
(the model its results come from). Each checkpoint also carries the SHA-256 of
its files, checked before it is restored, so flipped bits on disk are found
instead of silently evaluated.
"""

import contextlib
import errno
import hashlib
import json
import logging
import os
import pathlib
from collections.abc import Iterator
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from jaxdl.errors import CheckpointError
from jaxdl.training.selection import Selection
from jaxdl.training.state import TrainState

CHECKSUMS = "jaxdl_checksums.json"


class CorruptCheckpoint(CheckpointError):
  """A checkpoint whose files no longer match the checksums written with it."""


@contextlib.contextmanager
def quiet_absl(level: int = logging.WARNING) -> Iterator[None]:
  """Raises absl's log level inside the block only (orbax and dp-accounting log through it)."""
  logger = logging.getLogger("absl")
  previous = logger.level
  logger.setLevel(max(level, previous))
  try:
    yield
  finally:
    logger.setLevel(previous)


_STORAGE_ERRORS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                   errno.EROFS: "read-only file system", errno.EACCES: "permission denied"}


def _storage_problem(error: BaseException) -> str | None:
  """What is wrong with the disk, if ``error`` (or what caused it) says so; else None."""
  while error is not None:
    if isinstance(error, OSError) and error.errno in _STORAGE_ERRORS:
      return _STORAGE_ERRORS[error.errno]
    text = str(error)
    for code, reason in _STORAGE_ERRORS.items():
      if os.strerror(code) in text:
        return reason
    error = error.__cause__ or error.__context__
  return None


def _file_digests(folder: pathlib.Path) -> dict[str, str]:
  digests = {}
  for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != CHECKSUMS):
    digest = hashlib.sha256()
    with path.open("rb") as f:
      for block in iter(lambda: f.read(1 << 20), b""):
        digest.update(block)
    digests[str(path.relative_to(folder))] = digest.hexdigest()
  return digests


class Checkpointer:
  """Saves and restores (state, progress) pairs under ``workdir/checkpoints``.

  Args:
    workdir: the run folder.
    keep_latest: how many of the latest checkpoints to keep (at least 1).
    selection: keeps, besides the latest, the best epoch-end checkpoint by this
      rule (None or ``last``: only the latest).
  """

  def __init__(self, workdir: str | pathlib.Path, keep_latest: int = 2,
               selection: Selection | None = None):
    self.directory = pathlib.Path(workdir).absolute() / "checkpoints"
    policies = [checkpoint_managers.LatestN(n=max(keep_latest, 1))]
    best_fn = None
    if selection is not None and not selection.is_last:
      best_fn = Selection.checkpoint_rank
      policies.append(checkpoint_managers.BestN(get_metric_fn=best_fn, n=1,
                                                keep_checkpoints_without_metrics=False))
    options = ocp.CheckpointManagerOptions(
        create=True, enable_async_checkpointing=False, best_fn=best_fn,
        preservation_policy=checkpoint_managers.AnyPreservationPolicy(policies))
    with quiet_absl():
      self._manager = ocp.CheckpointManager(self.directory, options=options,
                                            item_names=("state", "progress"))
    self._writer = jax.process_index() == 0

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, state: TrainState, progress: dict[str, Any],
           metrics: dict[str, float] | None = None) -> None:
    """Saves a checkpoint at ``state.step``, replacing one already there.

    Args:
      state: the train state.
      progress: JSON-ready host-side progress.
      metrics: for epoch-end checkpoints, ``Selection.checkpoint_metrics`` of the
        epoch's row (mid-epoch checkpoints have none and are never "the best").
    """
    step = int(jax.device_get(state.step))
    try:
      with quiet_absl(logging.ERROR):  # Orbax warns about metric-less saves; those are intended.
        if step in self._manager.all_steps():  # A stale or corrupt copy of this very step.
          self._manager.delete(step)
        self._manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                         progress=ocp.args.JsonSave(progress)),
                           metrics=metrics)
        self._manager.wait_until_finished()
      self._write_checksums(step)
    except Exception as e:  # Orbax and tensorstore wrap the OS error in their own types.
      reason = _storage_problem(e)
      if reason is None:
        raise
      raise CheckpointError(f"cannot write the checkpoint of step {step} to {self.directory} "
                            f"({reason}); the checkpoints before it are intact: free space or "
                            "fix the folder, then rerun the same command to resume") from e

  def _write_checksums(self, step: int) -> None:
    if not self._writer:
      return
    folder = self.directory / str(step)
    tmp = folder / (CHECKSUMS + ".tmp")
    tmp.write_text(json.dumps(_file_digests(folder), indent=1))
    os.replace(tmp, folder / CHECKSUMS)

  def verify(self, step: int) -> None:
    """Raises CorruptCheckpoint if a file of checkpoint ``step`` differs from its checksum.

    A checkpoint without checksums (written before jaxdl recorded them, or cut
    off between orbax's commit and the checksum file) is accepted as it is.
    """
    folder = self.directory / str(step)
    manifest = folder / CHECKSUMS
    if not manifest.exists():
      return
    try:
      expected = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError) as e:
      raise CorruptCheckpoint(f"checkpoint {folder}: its checksum file is unreadable ({e})") from e
    found = _file_digests(folder)
    for name, digest in expected.items():
      if found.get(name) != digest:
        what = "is missing" if name not in found else "does not match its checksum"
        raise CorruptCheckpoint(f"checkpoint {folder} is corrupt: {name} {what}")

  def progress(self, step: int) -> dict[str, Any]:
    """The progress item of checkpoint ``step`` (verified first)."""
    self.verify(step)
    with quiet_absl():
      return self._manager.restore(step, args=ocp.args.Composite(
          progress=ocp.args.JsonRestore())).progress

  def restore(self, template: TrainState, step: int | None = None) -> tuple[TrainState, dict]:
    """Restores checkpoint ``step`` (default: the latest) into ``template``'s structure."""
    steps = self.all_steps()
    step = (steps[-1] if steps else None) if step is None else step
    if step is None:
      raise CheckpointError(f"no checkpoint in {self.directory}; train first with "
                            "`jaxdl train CONFIG --workdir DIR`")
    if step not in steps:
      raise CheckpointError(f"no checkpoint of step {step} in {self.directory} (it has "
                            f"{', '.join(map(str, steps)) or 'none'}); the run folder was "
                            "changed by hand: train it again with --overwrite")
    self.verify(step)
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, template)
    try:
      with quiet_absl():
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), progress=ocp.args.JsonRestore()))
    except Exception as e:  # Orbax raises many types for a damaged or foreign checkpoint.
      first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
      raise CheckpointError(
          f"checkpoint {self.directory / str(step)} cannot be restored into this model "
          f"({type(e).__name__}: {first_line[:300]}); it is corrupt or from a different "
          "model/config: delete it or use a new --workdir") from e
    return restored.state, restored.progress

  def delete(self, step: int) -> None:
    with quiet_absl():
      self._manager.delete(step)

  def close(self) -> None:
    self._manager.close()
