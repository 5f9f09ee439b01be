"""The researcher's own code behind a run: which files, their hashes, copies, and git state.

jaxdl's own commit says little about a run whose model, data function, loss or
metric lives in the researcher's files. Every run records, in
``provenance.json`` under ``user_code``, the experiment file and the file of
each plug-in module it names (``model.name``, ``data.name``, ``objective``,
``metrics``, or the objects given to the API), with the SHA-256 of its
contents, a copy under ``code/`` in the run folder, and the commit and dirty
state of the git repository holding it. A rerun of the same run folder whose
code differs is refused like a changed config (``changes``).
"""

import functools
import hashlib
import inspect
import pathlib
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import ml_collections

from jaxdl import parts

CODE_DIR = "code"
_JAXDL = pathlib.Path(__file__).resolve().parents[1]


def _module_file(module_name: str) -> pathlib.Path | None:
  module = sys.modules.get(module_name)
  path = getattr(module, "__file__", None)
  return pathlib.Path(path).resolve() if path else None


def _object_module(name: str) -> str | None:
  """The module of a ``python:module.Qualname`` name: the longest imported prefix."""
  dotted = name.removeprefix(parts.PYTHON_OBJECT)
  pieces = dotted.split(".")
  for end in range(len(pieces) - 1, 0, -1):
    if ".".join(pieces[:end]) in sys.modules:
      return ".".join(pieces[:end])
  return None


def _named_modules(config: ml_collections.ConfigDict) -> Iterable[tuple[str, str]]:
  """(role, module name) of each plug-in the config names by import path or object."""
  named = [("model", config.model.name), ("data", config.data.name.removeprefix("py:")),
           ("objective", config.objective), *(("metric", m) for m in config.metrics)]
  for role, name in named:
    if name.startswith(parts.PYTHON_OBJECT):
      module = _object_module(name)
    elif parts.is_import_path(name):
      module = name.partition(":")[0]
    else:
      continue
    if module:
      yield role, module


def _target(obj: Any) -> Any:
  return obj if inspect.isclass(obj) or inspect.isfunction(obj) else type(obj)


def _source_file(target: Any) -> pathlib.Path | None:
  try:
    path = inspect.getsourcefile(target)
  except (TypeError, OSError):  # Built in, or defined in a notebook or an exec'd string.
    return None
  return pathlib.Path(path).resolve() if path and pathlib.Path(path).is_file() else None


def _objects(objects: Sequence[Any]) -> Iterable[tuple[str, pathlib.Path]]:
  for obj in objects:
    path = _source_file(_target(obj)) if obj is not None else None
    if path:
      yield "object", path


def interactive_source(target: Any) -> str | None:
  """The source of a class or function defined in a notebook cell (no file to copy), as far
  as Python kept it: a function's own, or the methods a class defines; None if none is kept."""
  if inspect.isfunction(target):
    functions = [target]
  elif inspect.isclass(target):
    functions = [f for f in vars(target).values() if inspect.isfunction(f)]
  else:
    functions = []
  pieces = []
  for function in functions:
    try:
      pieces.append(inspect.getsource(function))
    except (OSError, TypeError):
      continue
  return "\n".join(pieces) or None


def _interactive_entries(objects: Sequence[Any]) -> list[dict[str, Any]]:
  """Entries for objects without a source file (a notebook's model): the source Python kept,
  hashed and copied, or a sha256 of None saying that the run cannot show its code."""
  entries = []
  for target in (_target(obj) for obj in objects if obj is not None):
    if (_source_file(target) is not None
        or getattr(target, "__module__", "").split(".")[0] == "jaxdl"):
      continue
    source = interactive_source(target)
    name = f"{target.__module__}.{target.__qualname__}"
    entries.append({"role": "object", "path": None, "name": f"{name} (defined interactively)",
                    "sha256": source and hashlib.sha256(source.encode()).hexdigest(),
                    "copy": source and f"{CODE_DIR}/object_{target.__qualname__}.py",
                    "source": source, "git_commit": None, "git_dirty": None, "git_root": None})
  return entries


def files(config: ml_collections.ConfigDict, objects: Sequence[Any] = ()
          ) -> dict[pathlib.Path, str]:
  """The researcher's files behind ``config`` (jaxdl's own excluded), each with its role."""
  found: dict[pathlib.Path, str] = {}
  if config.experiment and pathlib.Path(config.experiment).is_file():
    found[pathlib.Path(config.experiment).resolve()] = "experiment"
  for role, module in _named_modules(config):
    path = _module_file(module)
    if path is not None:
      found.setdefault(path, role)
  for role, path in _objects(objects):
    found.setdefault(path, role)
  return {p: r for p, r in found.items() if _JAXDL not in p.parents and p.suffix == ".py"}


def git(folder: pathlib.Path, *args: str) -> str | None:
  """``git -C folder ARGS``'s output, or None (no git, not a repository, an error)."""
  try:
    out = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True,
                         timeout=10, check=True)
  except (OSError, subprocess.SubprocessError):
    return None
  return out.stdout.strip()


@functools.cache
def _git_state(folder: pathlib.Path) -> dict[str, Any] | None:
  root = git(folder, "rev-parse", "--show-toplevel")
  if not root:
    return None
  return {"root": root, "commit": git(folder, "rev-parse", "HEAD"),
          "dirty": bool(git(folder, "status", "--porcelain", "--untracked-files=no"))}


def record(config: ml_collections.ConfigDict) -> list[dict[str, Any]]:
  """One entry per file: role, path, SHA-256, where its copy goes, and its repository's git
  commit and dirty state (None outside a repository). A model object the API was given
  (``parts.given``) counts by its source file, or by the source Python kept of it."""
  objects = [parts.given_object("model", config.model.name)]
  entries = []
  for path, role in sorted(files(config, objects).items()):
    git = _git_state(path.parent)
    entries.append({"role": role, "path": str(path), "name": path.name,
                    "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                    "copy": f"{CODE_DIR}/{role}_{path.name}",
                    "git_commit": git and git["commit"], "git_dirty": git and git["dirty"],
                    "git_root": git and git["root"]})
  return entries + _interactive_entries(objects)


def changes(saved: Sequence[Mapping[str, Any]], now: Sequence[Mapping[str, Any]]) -> list[str]:
  """``name: what changed`` for each file of ``saved`` whose contents differ now (or is gone).

  Files are matched by role and name, not path: a run folder may be resumed from another
  checkout of the same code.
  """
  current = {(e["role"], e["name"]): e for e in now}
  out = []
  for entry in saved:
    match = current.get((entry["role"], entry["name"]))
    if match is None:
      out.append(f"{entry['role']} {entry['name']}: no longer used")
    elif match["sha256"] != entry["sha256"]:
      out.append(f"{entry['role']} {entry['name']}: sha256 {(entry['sha256'] or 'none')[:12]}"
                 f" -> {(match['sha256'] or 'none')[:12]}")
  return out


def copy_into(folder: pathlib.Path, entries: Sequence[Mapping[str, Any]]) -> None:
  """Copies each file into ``folder/code/`` (the code the run ran, beside its results)."""
  for entry in entries:
    if not entry["copy"]:  # Defined interactively, and Python kept no source.
      continue
    target = folder / entry["copy"]
    target.parent.mkdir(exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(pathlib.Path(entry["path"]).read_bytes() if entry["path"]
                    else entry["source"].encode())
    tmp.replace(target)


def saved_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
  """``entry`` as provenance.json keeps it (a notebook object's source is in its copy)."""
  return {k: v for k, v in entry.items() if k != "source"}
