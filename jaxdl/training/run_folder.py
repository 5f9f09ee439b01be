"""The run folder: the self-describing record of one run that a paper can cite.

Files (all written atomically: a crash leaves the previous version intact):
  config.json      the resolved config.
  data_spec.json   facts about the data: sizes, classes, how splits were made.
  metrics.jsonl    one line per finished epoch.
  results.json     final test metrics, size and cost, seed, timing.
  test_predictions.npz  the selected checkpoint's prediction for each test example
                   (index, label, predicted, loss): paired tests and bootstrap intervals.
  provenance.json  library versions, git commit, devices, platform, command
                   lines of every session that worked on the run, and the
                   researcher's own code (user_code.py: hashes, git state).
  code/            copies of the researcher's files the run ran (the experiment
                   file, plug-in modules).
  vocab.json       the text vocabulary (text data only).
  checkpoints/     orbax checkpoints (see checkpoint.py).
  .jaxdl.lock      held by the process training the run (see folder_lock.py).
"""

import contextlib
import datetime
import importlib.metadata
import json
import os
import pathlib
import platform
import shutil
import socket
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from jaxdl import host
from jaxdl.configs.loading import flatten
from jaxdl.errors import CheckpointError
from jaxdl.models.native import build as native_build
from jaxdl.training import heaps, user_code
from jaxdl.training.folder_lock import LOCK_FILE, FolderLock

_PACKAGES = ("jaxdl", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "chex", "numpy",
             "tensorflow-datasets", "ml-collections", "scikit-learn")


def write_json(path: pathlib.Path, value: Any) -> None:
  """Writes JSON atomically (temporary file, then rename)."""
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(json.dumps(value, indent=2, sort_keys=False) + "\n")
  os.replace(tmp, path)


def read_json(path: pathlib.Path) -> Any:
  try:
    return json.loads(path.read_text())
  except (OSError, json.JSONDecodeError) as e:
    raise CheckpointError(f"{path} is unreadable ({e}); the run folder is damaged") from e


def _version(package: str) -> str | None:
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return None


def _git(*args: str) -> str | None:
  """git on jaxdl's own checkout (None where jaxdl is installed from a wheel)."""
  return user_code.git(pathlib.Path(__file__).resolve().parent, *args)


# The code that runs is the code imported at start: read its commit once, now, so a
# long process (a sweep, a reproduction) never records a commit made while it ran.
_COMMIT = _git("rev-parse", "HEAD")
_DIRTY = bool(_git("status", "--porcelain", "--untracked-files=no")) if _COMMIT else None


def code_commit() -> tuple[str | None, bool | None]:
  """The commit of jaxdl's code as this process imported it, and whether it had changes."""
  return _COMMIT, _DIRTY


def provenance(command: Sequence[str]) -> dict[str, Any]:
  """What produced a run: versions, code (as imported by this process), hardware, command."""
  devices = jax.devices()
  return {
      "versions": {p: _version(p) for p in _PACKAGES},
      "python": sys.version.split()[0],
      "git_commit": _COMMIT,
      "git_dirty": _DIRTY,
      "platform": platform.platform(),
      "machine": platform.machine(),
      "processor": platform.processor(),
      "cpu_count": os.cpu_count(),
      "hostname": socket.gethostname(),
      "backend": jax.default_backend(),
      "devices": [str(d) for d in devices],
      "device_kind": devices[0].device_kind,
      "process_count": jax.process_count(),
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
      "xla_tuning": host.xla_flags_state(),
      "host_allocator": host.allocator_state(),
      "xla_heaps": heaps.setting(),
      "native_kernels_auto": dict(zip(("picked", "why"), native_build.auto_choice())),
      "compilation_cache_dir": jax.config.jax_compilation_cache_dir,
      "command": list(command),
      "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
  }


# Config keys that say where the code came from or how fast the input is read, not what
# was run: the batches are the same whatever the workers and prefetch depth.
IGNORED_KEYS = ("experiment", "data.workers", "data.prefetch")


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
  """``key: old -> new`` for each key that differs between two saved configs.

  A key only one of them has (added to jaxdl since, or a field of another
  model that an older jaxdl saved) is not a difference: old runs stay
  resumable after an upgrade. Where the experiment file lives is not part of
  the run (``experiment``): a run folder can be resumed from another checkout,
  and with other input-pipeline settings.
  """
  old, new = flatten(old), flatten(new)
  return [f"{k}: {old[k]!r} -> {new[k]!r}" for k in sorted(set(old) & set(new))
          if k not in IGNORED_KEYS and old[k] != new[k]]


def extension_refusal(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
  """Why a run saved with config ``old`` cannot go on to ``new``'s larger ``num_epochs``, or
  None where it can: where its first epochs are exactly those of a run started with the
  larger number (a constant learning rate, noise not calibrated for the whole run)."""
  if new["num_epochs"] < old["num_epochs"]:
    return (f"it trained for num_epochs={old['num_epochs']}; a run of fewer epochs is a new "
            "run (its selection and test use fewer epochs)")
  if old["optim"].get("schedule", "constant") != "constant":
    return (f"optim.schedule={old['optim']['schedule']} spreads over all num_epochs, so the "
            f"epochs it trained are not those of a {new['num_epochs']}-epoch run")
  privacy = old.get("privacy", {})
  if privacy.get("enabled") and privacy.get("target_epsilon"):
    return ("its DP-SGD noise was calibrated for privacy.target_epsilon over its "
            f"{old['num_epochs']} epochs")
  return None


def _only_epochs_differ(diff: Sequence[str]) -> bool:
  """Whether ``config_differences``'s lines name ``num_epochs`` and nothing else."""
  return [d.partition(":")[0] for d in diff] == ["num_epochs"]


# Everything jaxdl writes into a run folder: --overwrite deletes these and nothing else.
PREDICTIONS = "test_predictions.npz"
RUN_FILES = ("config.json", "data_spec.json", "metrics.jsonl", "results.json", "provenance.json",
             "vocab.json", "eval.json", "wandb_id.txt", PREDICTIONS)
# "submitit": the task logs of a training job that `--launcher` started (sweeps/launch.py).
RUN_DIRS = ("checkpoints", "explain", "plots", "tb", "wandb", user_code.CODE_DIR, "submitit")


def is_run_folder(path: pathlib.Path) -> bool:
  return (path / "config.json").is_file() or (path / "checkpoints").is_dir()


def foreign_entries(path: pathlib.Path) -> list[str]:
  """What a folder holds besides jaxdl's own run files (sorted names)."""
  ours = {*RUN_FILES, *RUN_DIRS, LOCK_FILE}
  return sorted(p.name for p in path.iterdir()
                if p.name not in ours and not p.name.endswith(".tmp"))


def check_workdir(path: pathlib.Path, what: str = "run") -> None:
  """Refuses a workdir that is a file, or a folder of something other than a jaxdl run."""
  if path.exists() and not path.is_dir():
    raise CheckpointError(f"--workdir {path} is a file, not a folder; pass a folder for the "
                          f"{what}")
  if path.is_dir() and not is_run_folder(path) and foreign_entries(path):
    held = foreign_entries(path)
    raise CheckpointError(f"--workdir {path} is not a jaxdl {what} folder (it holds "
                          f"{', '.join(held[:5])}{', ...' if len(held) > 5 else ''}); jaxdl "
                          "writes and deletes only its own folders: pass a new or empty --workdir")


def _vocab_difference(saved: Sequence[str], vocab: Sequence[str]) -> int:
  return next((i for i, (a, b) in enumerate(zip(saved, vocab)) if a != b),
              min(len(saved), len(vocab)))


class RunFolder:
  """Reads and writes the files of one run folder.

  With several processes (``jax.distributed``), only process 0 writes; the
  others read and check, so every process agrees on what the folder holds.
  """

  def __init__(self, workdir: str | pathlib.Path):
    self.path = pathlib.Path(workdir)
    self.writer = jax.process_index() == 0

  def file(self, name: str) -> pathlib.Path:
    return self.path / name

  def write(self, name: str, value: Any) -> None:
    """Writes ``name`` as JSON (process 0 only)."""
    if self.writer:
      write_json(self.file(name), value)

  def write_arrays(self, name: str, arrays: Mapping[str, Any]) -> None:
    """Writes ``name`` as an .npz of ``arrays`` (process 0 only), atomically."""
    if self.writer:
      tmp = self.file(name + ".tmp")
      with tmp.open("wb") as f:
        np.savez(f, **arrays)
      os.replace(tmp, self.file(name))

  def read_arrays(self, name: str) -> dict[str, np.ndarray] | None:
    """The arrays of ``name`` (None if the run has none, e.g. one made by an older jaxdl)."""
    path = self.file(name)
    if not path.exists():
      return None
    with np.load(path) as loaded:
      return {k: loaded[k] for k in loaded.files}

  def lock(self, log=lambda message: None) -> contextlib.AbstractContextManager:
    """Creates the folder if needed and holds its lock (process 0; others hold nothing)."""
    check_workdir(self.path)
    if not self.writer:
      return contextlib.nullcontext()
    try:
      self.path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
      raise CheckpointError(f"cannot create the run folder {self.path} ({e.strerror}); pass a "
                            "--workdir where you can write") from e
    return FolderLock(self.path, log)

  def check_claim(self, config: dict[str, Any], vocab: Sequence[str] | None,
                  overwrite: bool, code: Sequence[Mapping[str, Any]] = ()) -> None:
    """Refuses a folder that holds a run of another config, vocabulary or code (the
    researcher's files, ``user_code.record``), unless ``overwrite``."""
    if overwrite:
      return
    existing = self.file("config.json")
    if existing.exists():
      saved = read_json(existing)
      diff = config_differences(saved, config)
      if _only_epochs_differ(diff):
        why = extension_refusal(saved, config)
        if why:
          raise CheckpointError(f"workdir {self.path} cannot go on to num_epochs="
                                f"{config['num_epochs']}: {why}; use a new --workdir, or pass "
                                "--overwrite to delete the old run")
      elif diff:
        raise CheckpointError(f"workdir {self.path} holds a run of a different config "
                              f"({'; '.join(diff[:5])}); use a new --workdir, or pass "
                              "--overwrite to delete the old run")
    changed = self.code_changes(code)
    if changed:
      raise CheckpointError(f"workdir {self.path} holds a run of different code "
                            f"({'; '.join(changed[:5])}); its results are those of the old "
                            "code: use a new --workdir, or pass --overwrite to delete the old "
                            "run")
    self.check_vocab(vocab, required=False)

  def code_changes(self, code: Sequence[Mapping[str, Any]]) -> list[str]:
    """How the researcher's files differ from the ones this run recorded ([] if none did)."""
    path = self.file("provenance.json")
    saved = read_json(path).get("user_code") if path.exists() else None
    return user_code.changes(saved, code) if saved is not None else []

  def check_vocab(self, vocab: Sequence[str] | None, required: bool) -> None:
    """Checks the text vocabulary rebuilt from the data against the run's vocab.json.

    Args:
      vocab: the vocabulary of the data now (None: not text data).
      required: the run was trained, so its vocab.json must be there.
    """
    if vocab is None:
      return
    path = self.file("vocab.json")
    if not path.exists():
      if required:
        raise CheckpointError(f"{path} is missing: the vocabulary is part of the run, and one "
                              "rebuilt from today's data may not match the trained embedding; "
                              "restore the file, or train a new run")
      return
    saved = read_json(path)
    if saved != list(vocab):
      raise CheckpointError(f"the text vocabulary rebuilt from the data differs from the run's "
                            f"{path} (size {len(vocab)} vs {len(saved)}, first difference at id "
                            f"{_vocab_difference(saved, vocab)}); the data changed since "
                            "training: restore it, or train a new run")

  def start(self, config: dict[str, Any], spec: dict[str, Any], vocab: Sequence[str] | None,
            command: Sequence[str], overwrite: bool,
            code: Sequence[Mapping[str, Any]] = ()) -> None:
    """Begins (or resumes) a run: deletes the old run if ``overwrite``, writes its records
    (the researcher's files ``code`` copied under code/)."""
    if not self.writer:
      return
    if overwrite:
      self.clear()
    saved = self.file("config.json")
    if not saved.exists() or read_json(saved)["num_epochs"] != config["num_epochs"]:
      self.write("config.json", config)  # New, or more epochs (check_claim allowed them).
    self.write("data_spec.json", spec)
    if vocab is not None and not self.file("vocab.json").exists():
      self.write("vocab.json", list(vocab))
    user_code.copy_into(self.path, code)
    self.record_session(command, code)

  def clear(self) -> None:
    """Deletes what jaxdl wrote here (never anything else); the folder stays."""
    for name in RUN_FILES:
      self.file(name).unlink(missing_ok=True)
    for name in RUN_DIRS:
      if self.file(name).is_dir():
        shutil.rmtree(self.file(name))
    for tmp in self.path.glob("*.tmp"):
      tmp.unlink()

  def record_session(self, command: Sequence[str],
                     code: Sequence[Mapping[str, Any]] = ()) -> None:
    """Adds this session (versions, devices, command, the user's code) to provenance.json."""
    if not self.writer:
      return
    path = self.file("provenance.json")
    record = read_json(path) if path.exists() else {"sessions": []}
    session = provenance(command)
    record.update({k: v for k, v in session.items() if k not in ("command", "started_at")})
    record["user_code"] = [user_code.saved_entry(entry) for entry in code]
    record["sessions"].append({"command": session["command"],
                               "started_at": session["started_at"]})
    write_json(path, record)

  def write_metrics(self, history: Sequence[Mapping[str, Any]]) -> None:
    if not self.writer:
      return
    tmp = self.file("metrics.jsonl.tmp")
    tmp.write_text("".join(json.dumps(row) + "\n" for row in history))
    os.replace(tmp, self.file("metrics.jsonl"))

  def read_metrics(self) -> list[dict[str, Any]]:
    path = self.file("metrics.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
