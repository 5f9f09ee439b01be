"""Resolving a part by name: a built-in name, or an import path ``PKG.MODULE:ATTR``.

A *part* is a model, a data source, an objective, a metric, an optimizer, a schedule, a
parameter constraint or a study. Built-in parts are found in their kind's ``Registry``;
anything else is imported, the way big_vision and the Flax
examples pick a model by name, from ``sys.path`` and the folder of the
experiment file that named it (so a module beside the experiment, or the
experiment file itself, can hold the researcher's code).
"""

import contextlib
import contextvars
import difflib
import importlib
import pathlib
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from jaxdl.errors import ConfigError

PYTHON_OBJECT = "python:"
Record = TypeVar("Record")  # How a config names a part passed as a Python object.


def is_import_path(name: str) -> bool:
  module, sep, attr = name.partition(":")
  return bool(sep and module and attr and all(p.isidentifier() for p in module.split("."))
              and all(p.isidentifier() for p in attr.split(".")))


def object_name(obj: Any) -> str:
  """How a config records a part given as a Python object (``python:module.Qualname``)."""
  target = obj if isinstance(obj, type) or callable(obj) and hasattr(obj, "__qualname__") else \
      type(obj)
  return f"{PYTHON_OBJECT}{getattr(target, '__module__', '?')}.{target.__qualname__}"


# The Python objects handed to the API in the current call: keyword -> (name, object).
_GIVEN: contextvars.ContextVar[Mapping[str, tuple[str, Any]] | None] = contextvars.ContextVar(
    "jaxdl_given", default=None)


@contextlib.contextmanager
def given(**objects: tuple[str, Any | None]) -> Iterator[None]:
  """Inside the block, ``given(model=(name, obj))`` makes the model part ``name`` be ``obj``.

  The Python API hands a researcher's objects (``model=``, ``data=``) over once, at its
  edge, under the name the config records (``python:module.Qualname``, or a saved run's
  part name); everything below finds them through the registries by that name, as it
  finds a built-in part, so no signature carries them. An object of None hands nothing
  over. The block ends the hand-over: a later call passes them again (so a notebook's
  redefined class is never a stale one).
  """
  handed = {k: v for k, v in objects.items() if v[1] is not None}
  token = _GIVEN.set({**(_GIVEN.get() or {}), **handed})
  try:
    yield
  finally:
    _GIVEN.reset(token)


def given_object(argument: str, name: str) -> Any:
  """The object handed over by keyword ``argument`` as part ``name`` in this call, or None."""
  named = (_GIVEN.get() or {}).get(argument)
  return named[1] if named and named[0] == name else None


@contextlib.contextmanager
def code_path(experiment: str) -> Iterator[None]:
  """Puts the experiment file's folder first on ``sys.path`` inside the block."""
  folder = str(pathlib.Path(experiment).resolve().parent) if experiment else ""
  if folder:
    sys.path.insert(0, folder)
  try:
    yield
  finally:
    if folder:
      sys.path.remove(folder)


def import_object(path: str, experiment: str = "", what: str = "part") -> Any:
  """The object at ``PKG.MODULE:ATTR`` (ATTR may be dotted), imported with the experiment's folder.

  Raises:
    ConfigError: naming the path, what failed and where it looked.
  """
  if not is_import_path(path):
    raise ConfigError(f"{what} {path!r} is neither a built-in name nor an import path "
                      "PKG.MODULE:ATTR (e.g. my_models:ResNet)")
  module_name, _, attr = path.partition(":")
  with code_path(experiment):
    try:
      module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
      where = f"the experiment's folder {pathlib.Path(experiment).resolve().parent} and " \
          if experiment else ""
      raise ConfigError(f"{what} {path!r}: cannot import {module_name!r} ({e}); it is searched "
                        f"in {where}sys.path") from e
    except Exception as e:  # The user's module failed while importing: one line, its error.
      raise ConfigError(f"{what} {path!r}: importing {module_name!r} failed: "
                        f"{type(e).__name__}: {e}") from e
  obj = module
  for part in attr.split("."):
    if not hasattr(obj, part):
      public = sorted(n for n in dir(module) if not n.startswith("_"))
      raise ConfigError(f"{what} {path!r}: {module_name} has no {attr!r}; it defines "
                        f"{', '.join(public[:12])}{', ...' if len(public) > 12 else ''}")
    obj = getattr(obj, part)
  return obj


def module_name_of(experiment: str) -> str:
  """The module name an experiment file imports under (its file name without .py)."""
  return pathlib.Path(experiment).stem


def suggest(name: str, valid: Iterable[str]) -> list[str]:
  """The valid name ``name`` most likely meant: a close spelling, or its initials (lr)."""
  valid = list(valid)
  close = difflib.get_close_matches(name, valid, n=1)
  if close:
    return close
  return [v for v in valid if "_" in v and "".join(w[0] for w in v.split("_")) == name][:1]


def did_you_mean(name: str, valid: Iterable[str]) -> str:
  """`` (did you mean 'x'?)`` for the closest of ``valid``, or an empty string."""
  close = suggest(name, valid)
  return f" (did you mean {close[0]!r}?)" if close else ""


class Registry(Generic[Record]):
  """The parts of one kind (optimizers, constraints, ...): built-in names and import paths.

  A built-in part is registered under its name; any other name is an import path
  ``PKG.MODULE:ATTR`` whose object ``adapt(name, obj)`` turns into a record (it
  accepts a record itself, and whatever else the kind allows: a class, a factory).
  Built-in and user parts are the same records; only where they are found differs.
  """

  def __init__(self, kind: str, adapt: Callable[[str, Any], Record], key: str = "",
               argument: str = ""):
    """``kind`` names the parts in errors; ``key`` is the config key that names one;
    ``argument`` the API's keyword that hands one over as an object (``model``)."""
    self.kind = kind
    self.key = key or kind
    self.argument = argument or kind
    self._adapt = adapt
    self._records: dict[str, Record] = {}

  def register(self, name: str, record: Record) -> Record:
    if name in self._records:
      raise ValueError(f"{self.kind} {name!r} is registered twice")
    self._records[name] = record
    return record

  def names(self) -> list[str]:
    return sorted(self._records)

  def __getitem__(self, name: str) -> Record:
    """The built-in part ``name`` (KeyError if there is none)."""
    return self._records[name]

  def resolve(self, name: str, experiment: str = "") -> Record:
    """The record of built-in ``name`` or of the object at import path ``name``.

    Raises:
      ConfigError: an unknown name (with a did-you-mean and the built-in names) or an
        import path that fails or names something that is not this kind of part.
    """
    handed = given_object(self.argument, name)
    if handed is not None:  # The API's object: it stands for the name the run records.
      return self._adapt(name, handed)
    if name in self._records:
      return self._records[name]
    if name.startswith(PYTHON_OBJECT):
      raise ConfigError(f"{self.kind} {name} was a Python object given to the API; pass it "
                        f"again ({self.argument}=...) to use this run")
    if not is_import_path(name):
      raise ConfigError(f"unknown {self.key} {name!r}{did_you_mean(name, self._records)}; "
                        f"choose one of {', '.join(self.names())}, or give an import path "
                        f"PKG.MODULE:ATTR to your own")
    return self._adapt(name, import_object(name, experiment, what=self.kind))
