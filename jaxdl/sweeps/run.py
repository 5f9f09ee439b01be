"""``run_sweep``: expand a sweep, train its members, and collect their results.

The sweep folder holds ``sweep.json`` (command, axes, members and their
status), one run folder per member (``m000``, ``m001``, ...: the same files a
lone ``jaxdl train`` writes), and ``results.csv`` (one row per member: its
swept values and its results.json numbers). Rerunning the same sweep skips
finished members and resumes interrupted ones from their checkpoints.
"""

import contextlib
import csv
import dataclasses
import datetime
import json
import os
import pathlib
import re
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import ml_collections

from jaxdl.configs import apply_overrides
from jaxdl.configs.loading import config_to_dict
from jaxdl.data.cache import DatasetCache
from jaxdl.errors import CheckpointError, ConfigError, JaxdlError
from jaxdl.sweeps.axes import Axis, expand
from jaxdl.sweeps.launch import SUBMITIT_DIR
from jaxdl.sweeps.groups import group_members, splitting_axes
from jaxdl.training.experiment import build_experiment
from jaxdl.training.folder_lock import LOCK_FILE, RunLocked, waiting_lock
from jaxdl.training import user_code
from jaxdl.training.loop import train_group
from jaxdl.training.run_folder import RunFolder, config_differences, read_json, write_json

MODES = ("auto", "vectorized", "sequential")
SWEEP_LOCK = ".sweep.lock"  # Held while a shard rewrites sweep.json and results.csv.
_MEMBER = re.compile(r"m\d{3,}")


def member_name(index: int) -> str:
  return f"m{index:03d}"


def _finished(folder: pathlib.Path, config: ml_collections.ConfigDict) -> bool:
  """Whether the member's folder holds results of this config and of today's code."""
  results, saved = folder / "results.json", folder / "config.json"
  return (results.exists() and saved.exists()
          and not config_differences(read_json(saved), config_to_dict(config))
          and not RunFolder(folder).code_changes(user_code.record(config)))


def choose_mode(mode: str, log: Callable[[str], None]) -> str:
  if mode not in MODES:
    raise JaxdlError(f"unknown --mode {mode!r}; choose one of {', '.join(MODES)}")
  if mode != "auto":
    return mode
  if jax.default_backend() == "cpu":
    # Measured (scripts/bench_sweep.py, README): on XLA:CPU the vmapped step runs
    # at 0.3x (CNN: grouped convolutions) to 0.6x (LSTM: batched matmuls) the
    # examples/s of the members one by one; only its single compile saves time.
    log("mode auto: sequential (on CPU, vectorized members train slower than one by one; "
        "--mode vectorized forces it)")
    return "sequential"
  return "vectorized"


def _write_results_csv(folder: pathlib.Path, members: Sequence[dict[str, Any]],
                       axis_keys: Sequence[str]) -> None:
  rows, result_keys = [], []
  for member in members:
    results_path = folder / member["name"] / "results.json"
    results = read_json(results_path) if results_path.exists() else {}
    scalars = {k: v for k, v in results.items() if not isinstance(v, (list, dict))}
    result_keys += [k for k in scalars if k not in result_keys and k not in axis_keys]
    rows.append({"member": member["name"], "status": member["status"], "group": member["group"],
                 **member["overrides"], **{k: v for k, v in scalars.items()
                                           if k not in axis_keys}})
  columns = ["member", "status", "group", *axis_keys, *result_keys]
  tmp = folder / "results.csv.tmp"
  with tmp.open("w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
  tmp.replace(folder / "results.csv")


def _check_sweep_folder(folder: pathlib.Path) -> None:
  """Refuses a workdir that is a file, or a folder of something other than a jaxdl sweep."""
  if folder.exists() and not folder.is_dir():
    raise CheckpointError(f"--workdir {folder} is a file, not a folder; pass a folder for the "
                          "sweep")
  if not folder.is_dir() or (folder / "sweep.json").exists():
    return
  # Another shard of the same sweep may be setting the folder up right now.
  ours = {SWEEP_LOCK, "sweep.json.tmp", "results.csv", "results.csv.tmp", SUBMITIT_DIR}
  held = sorted(p.name for p in folder.iterdir()
                if p.name not in ours and not _MEMBER.fullmatch(p.name))
  if held:
    raise CheckpointError(f"--workdir {folder} is not a jaxdl sweep folder (it has no sweep.json "
                          f"and holds {', '.join(held[:5])}{', ...' if len(held) > 5 else ''}); "
                          "jaxdl writes and deletes only its own folders: pass a new or empty "
                          "--workdir")


def _clear_sweep(folder: pathlib.Path) -> None:
  """Deletes what jaxdl wrote in a sweep folder (its members' run files included), nothing else."""
  for member in sorted(folder.iterdir()):
    if _MEMBER.fullmatch(member.name) and member.is_dir():
      run = RunFolder(member)
      with run.lock():  # Never under a process that is training this member.
        run.clear()
      with contextlib.suppress(OSError):  # Kept where the user put files of their own there.
        (member / LOCK_FILE).unlink()
        member.rmdir()
  for name in ("sweep.json", "results.csv"):
    (folder / name).unlink(missing_ok=True)
  if (folder / "plots").is_dir():
    shutil.rmtree(folder / "plots")


@dataclasses.dataclass
class _Sweep:
  """A sweep being run: its members' configs, groups and status, and its sweep.json record."""

  folder: pathlib.Path
  configs: list[ml_collections.ConfigDict]
  groups: list[list[int]]
  members: list[dict[str, Any]]
  record: dict[str, Any]
  axis_keys: list[str]
  data_cache: DatasetCache
  mine: frozenset[int] = frozenset()  # The members this process trains (its shard's).

  def save(self) -> None:
    """Writes sweep.json and results.csv, keeping other shards' statuses as they wrote them.

    Shards of one sweep may run at once on a shared file system: each updates
    its own members under a lock on the sweep folder, so none is clobbered.
    """
    with waiting_lock(self.folder / SWEEP_LOCK):
      path = self.folder / "sweep.json"
      on_disk = read_json(path)["members"] if path.exists() else []
      for i, saved in enumerate(on_disk[:len(self.members)]):
        if i not in self.mine and saved.get("status") in ("done", "failed", "running"):
          self.members[i].update({k: v for k, v in saved.items() if k in ("status", "error")})
      statuses = {m["status"] for m in self.members}
      self.record["status"] = ("done" if statuses == {"done"} else
                               "running" if "running" in statuses else "incomplete")
      self.record["updated_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec="seconds")
      write_json(path, self.record)
      _write_results_csv(self.folder, self.members, self.axis_keys)

  def mark_finished(self) -> None:
    """Members whose run folder already holds results of the same config are done."""
    for member, config in zip(self.members, self.configs):
      if _finished(self.folder / member["name"], config):
        member["status"] = "done"

  def batches(self, vectorized: bool, shard: tuple[int, int] = (0, 1)) -> list[list[int]]:
    """The members trained together (each group when vectorized, else one at a time), of
    shard ``(index, count)``: every count-th batch from the index-th, so whole groups stay
    together."""
    batches = self.groups if vectorized else [[i] for i in range(len(self.configs))]
    index, count = shard
    return batches[index::count]

  def train(self, todo: list[int], quiet: bool, command: Sequence[str], log) -> None:
    """Trains members ``todo`` together; a member's error marks it failed, not the sweep."""
    for i in todo:
      self.members[i]["status"] = "running"
    self.save()
    log(f"training {', '.join(self.members[i]['name'] for i in todo)}"
        + (" together (vectorized)" if len(todo) > 1 else ""))
    try:
      train_group([self.configs[i] for i in todo],
                  [self.folder / self.members[i]["name"] for i in todo],
                  vectorized=len(todo) > 1, quiet=quiet, command=command,
                  datasets=self.data_cache(self.configs[todo[0]]), log=log)
    except RunLocked:
      raise  # Another process trains this member: not a failure of the member.
    except JaxdlError as e:
      for i in todo:
        self.members[i].update(status="failed", error=str(e))
      log(f"failed: {e}")
      return
    for i in todo:
      self.members[i]["status"] = "done"


def _plan(base: ml_collections.ConfigDict, axes: Sequence[Axis], folder: pathlib.Path,
          settings: dict[str, Any]) -> _Sweep:
  """Expands the sweep and builds every group's data and model: nothing on disk changes yet."""
  overrides = expand(axes, settings["samples"], settings["sweep_seed"])
  if base.log.wandb and not base.log.wandb_group:  # The sweep is the W&B group of its runs.
    base = apply_overrides(base, {"log.wandb_group": folder.name})
  configs = [apply_overrides(base, o) for o in overrides]  # Bad keys fail here.
  groups = group_members(configs)
  cache = DatasetCache()  # Each member trains on the data its own config describes.
  for g in groups:
    build_experiment(configs[g[0]], cache(configs[g[0]]))
  group_of = {i: g for g, members in enumerate(groups) for i in members}
  members = [{"name": member_name(i), "overrides": o, "group": group_of[i], "status": "pending"}
             for i, o in enumerate(overrides)]
  record = {"command": list(settings["command"]), "base_config": config_to_dict(base),
            "axes": [a.describe() for a in axes], "samples": settings["samples"],
            "sweep_seed": settings["sweep_seed"], "mode": settings["mode"], "members": members}
  return _Sweep(folder, configs, groups, members, record, [a.key for a in axes], cache)


def _check_same_sweep(sweep: _Sweep) -> None:
  path = sweep.folder / "sweep.json"
  if not path.exists():
    return
  old = read_json(path)
  new_overrides = json.loads(json.dumps([m["overrides"] for m in sweep.members]))
  if [m["overrides"] for m in old["members"]] != new_overrides or \
      config_differences(old["base_config"], sweep.record["base_config"]):
    raise CheckpointError(f"{sweep.folder} holds a different sweep; use a new --workdir, or "
                          "--overwrite to delete it")


def run_sweep(base: ml_collections.ConfigDict, axes: Sequence[Axis], workdir: str | pathlib.Path,
              *, mode: str = "auto", samples: int = 0, sweep_seed: int = 0, quiet: bool = False,
              overwrite: bool = False, command: Sequence[str] = (),
              shard: tuple[int, int] = (0, 1),
              log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> list[dict]:
  """Trains every member of the sweep of ``base`` over ``axes`` in ``workdir``.

  Objects the API was given (``parts.given``) serve every member; a data function is
  called with each member's ``config.data``.

  Args (besides the sweep's):
    shard: ``(index, count)``: train only this shard's members (several processes, e.g. a
      SLURM job array, share one sweep folder); see ``parse_shard``.

  Returns:
    The members as written to sweep.json (name, overrides, group, status).
  """
  folder = pathlib.Path(workdir)
  _check_sweep_folder(folder)
  if overwrite and shard[1] > 1:
    raise ConfigError("--overwrite deletes the whole sweep, which other shards may be training; "
                      "run it once without --shard, then start the shards")
  sweep = _plan(base, axes, folder, {"samples": samples, "sweep_seed": sweep_seed, "mode": mode,
                                     "command": command})
  if not overwrite:
    _check_same_sweep(sweep)
  chosen = choose_mode(mode, log)
  if overwrite and folder.is_dir():
    _clear_sweep(folder)
  folder.mkdir(parents=True, exist_ok=True)
  sweep.record["mode_used"] = chosen
  batches = _my_batches(sweep, chosen, shard, log)
  sweep.mark_finished()
  sweep.save()
  for batch in batches:
    todo = [i for i in batch if sweep.members[i]["status"] != "done"]
    if todo:
      sweep.train(todo, quiet, command, log)
  sweep.save()
  return sweep.members


def _my_batches(sweep, chosen: str, shard: tuple[int, int], log: Callable[[str], None]
                ) -> list[list[int]]:
  """This shard's members, in the batches they train in (groups kept whole); says how."""
  if chosen == "vectorized" and len(sweep.groups) > 1:
    split = splitting_axes(sweep.axis_keys, sweep.configs, sweep.groups)
    log(f"{len(sweep.groups)} groups: {', '.join(split) or 'the configs'} change shapes or code, "
        "so members that differ in them are trained in separate programs")
  batches = sweep.batches(vectorized=chosen == "vectorized", shard=shard)
  sweep.mine = frozenset(i for batch in batches for i in batch)
  if shard[1] > 1:
    log(f"shard {shard[0]}/{shard[1]}: {len(sweep.mine)} of {len(sweep.members)} members")
  return batches


def parse_shard(text: str | None, environ: Mapping[str, str] = os.environ) -> tuple[int, int]:
  """``--shard I/N`` as ``(I, N)``; ``auto`` reads a SLURM job array's task id and count."""
  if not text:
    return (0, 1)
  if text == "auto":
    if "SLURM_ARRAY_TASK_ID" not in environ:
      raise ConfigError("--shard auto reads SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT, "
                        "which are not set: run it in a SLURM job array, or pass --shard I/N")
    first = int(environ.get("SLURM_ARRAY_TASK_MIN", "0"))
    index = int(environ["SLURM_ARRAY_TASK_ID"]) - first
    count = int(environ.get("SLURM_ARRAY_TASK_COUNT", "1"))
  else:
    index_text, sep, count_text = text.partition("/")
    if not sep or not index_text.isdigit() or not count_text.isdigit():
      raise ConfigError(f"--shard {text!r}: write it as I/N (e.g. 0/4), or auto under SLURM")
    index, count = int(index_text), int(count_text)
  if count < 1 or not 0 <= index < count:
    raise ConfigError(f"--shard {index}/{count}: the index must be in 0..{count - 1}")
  return index, count
