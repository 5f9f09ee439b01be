"""Loads experiment files and applies ``--config.a.b=value`` overrides.

An experiment is a Python file with ``get_config()`` (or ``get_config(arg)``,
selected as ``path.py:arg``) returning an ``ml_collections.ConfigDict``. The
config is locked after loading, so an override can only change a key that
exists, and a value is parsed to the type of the key's default.
"""

import ast
import contextlib
import importlib.util
import inspect
import pathlib
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import ml_collections

from jaxdl.configs.checks import check_keys_and_types
from jaxdl.configs.keys import config_to_dict, flatten, suggest  # noqa: F401 (re-exported)
from jaxdl.configs.data_fields import complete_data, rename_data, shared_keys
from jaxdl.configs.model_fields import complete_model, rename_model
from jaxdl.configs.optim_fields import complete_optim, rename_optim
from jaxdl.errors import ConfigError

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def load_module(path_str: str):
  """The experiment file ``path_str`` as a module (its folder importable while it loads)."""
  path = pathlib.Path(path_str)
  if not path.is_file():
    raise ConfigError(f"config file {path_str!r} does not exist; pass a file such as "
                      "experiments/seed_cnn_digits.py")
  if path.suffix != ".py":
    raise ConfigError(f"config file {path_str!r} is not a Python file; an experiment is a .py "
                      "file defining get_config(), such as experiments/seed_cnn_digits.py")
  module_spec = importlib.util.spec_from_file_location(f"jaxdl_experiment_{path.stem}", path)
  module = importlib.util.module_from_spec(module_spec)
  # Like a script, an experiment may import its siblings (shared bases).
  sys.path.insert(0, str(path.resolve().parent))
  try:
    module_spec.loader.exec_module(module)
  except Exception as e:  # The user's file: report where it failed, in one line.
    raise ConfigError(f"config file {path_str} failed to load: {type(e).__name__}: {e}") from e
  finally:
    sys.path.pop(0)
  return module


def load_config(experiment: str) -> ml_collections.ConfigDict:
  """Loads ``path.py`` or ``path.py:arg`` and returns its locked config."""
  path_str, _, arg = experiment.partition(":")
  module = load_module(path_str)
  get_config = getattr(module, "get_config", None)
  if not callable(get_config):
    raise ConfigError(f"config file {path_str} does not define get_config(); add "
                      "`def get_config(): return ml_collections.ConfigDict(...)`")
  try:
    config = get_config(arg) if arg else get_config()
  except Exception as e:  # The user's code: one line naming the variant and what it said.
    variant = f"get_config({arg!r})" if arg else "get_config()"
    if arg and isinstance(e, TypeError) and not _takes_an_argument(get_config):
      raise ConfigError(f"config file {path_str} has no variants (its get_config() takes no "
                        f"argument), but ':{arg}' was given; drop it") from e
    raise ConfigError(f"config file {path_str}: {variant} failed: {type(e).__name__}: {e}") from e
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigError(f"get_config() in {path_str} returned {type(config).__name__}, "
                      "not an ml_collections.ConfigDict")
  if "experiment" in config:  # Import paths of the user's parts resolve from its folder.
    config.experiment = str(pathlib.Path(path_str).resolve())
  check_keys_and_types(config, f"config file {path_str}")
  complete_data(config)
  complete_model(config)
  complete_optim(config)
  config.lock()
  return config


def load_sweep(experiment: str) -> dict[str, Any]:
  """The experiment's ``sweep()`` axes, ``{key: values or spec string}`` ({} if none)."""
  module = load_module(experiment.partition(":")[0])
  sweep = getattr(module, "sweep", None)
  axes = sweep() if callable(sweep) else {}
  if not isinstance(axes, Mapping):
    raise ConfigError(f"sweep() in {experiment} must return a dict of axes, got "
                      f"{type(axes).__name__}")
  return dict(axes)


def _takes_an_argument(fn) -> bool:
  try:
    return bool(inspect.signature(fn).parameters)
  except (TypeError, ValueError):
    return True


def _valid_keys(node: ml_collections.ConfigDict) -> list[str]:
  return sorted(node.keys())


def _parse_value(key: str, text: str, default: Any) -> Any:
  """Parses ``text`` to the type of ``default``; raises ConfigError if it cannot."""
  if isinstance(default, bool):
    if text.lower() in _TRUE:
      return True
    if text.lower() in _FALSE:
      return False
    raise ConfigError(f"config key {key!r} expects a bool (true/false), got {text!r}")
  if isinstance(default, int):
    try:
      return int(text)
    except ValueError:
      raise ConfigError(f"config key {key!r} expects an int, got {text!r}") from None
  if isinstance(default, float):
    try:
      return float(text)
    except ValueError:
      raise ConfigError(f"config key {key!r} expects a float, got {text!r}") from None
  if isinstance(default, str):
    return text
  if isinstance(default, (tuple, list)):
    try:
      value = ast.literal_eval(text if text.strip() else "()")
    except (ValueError, SyntaxError):
      value = tuple(part.strip() for part in text.split(","))
    if not isinstance(value, (tuple, list)):
      value = (value,)
    return type(default)(value)
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def _unknown_key(key: str, name: str, walked: list[str], node: Any) -> ConfigError:
  where = ".".join(walked) or "the top level"
  valid = _valid_keys(node) if isinstance(node, ml_collections.ConfigDict) else []
  close = suggest(name, valid)
  if walked == ["model"] and "name" in valid:  # The chosen model's own fields.
    fields = [v for v in valid if v != "name"]
    hint = f" (did you mean 'model.{close[0]}'?)" if close and close[0] != "name" else ""
    return ConfigError(f"config key {key!r} is not a field of model {node.name!r}{hint}; its "
                       f"fields: {', '.join(fields) or 'none'}")
  if walked == ["data"] and "name" in valid:  # The shared keys and the source's own fields.
    shared = shared_keys()
    fields = [v for v in valid if v not in shared]
    hint = f" (did you mean 'data.{close[0]}'?)" if close else ""
    return ConfigError(f"config key {key!r} is not a field of data source {node.name!r}{hint}; "
                       f"its fields: {', '.join(fields) or 'none'}; every source's: "
                       f"{', '.join(shared[1:])}")
  hint = f" (did you mean {'.'.join(walked + close)!r}?)" if close else ""
  return ConfigError(f"unknown config key {key!r}{hint}; valid keys at {where}: {', '.join(valid)}")


def set_value(config: ml_collections.ConfigDict, key: str, value: Any) -> None:
  """Sets dotted ``key`` to ``value`` (parsed from a string if it is one)."""
  *parents, leaf = key.split(".")
  node = config
  for depth, name in enumerate(parents):
    if not isinstance(node, ml_collections.ConfigDict) or name not in node:
      raise _unknown_key(key, name, parents[:depth], node)
    node = node[name]
  if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
    raise _unknown_key(key, leaf, parents, node)
  default = node[leaf]
  if isinstance(default, ml_collections.ConfigDict):
    raise ConfigError(f"config key {key!r} is a group; set one of its keys: "
                      f"{', '.join(_valid_keys(default))}")
  if isinstance(value, str):
    value = _parse_value(key, value, default)
  try:
    with config.ignore_type() if default is None else contextlib.nullcontext():
      node[leaf] = value
  except TypeError as e:
    raise ConfigError(f"config key {key!r} expects {type(default).__name__}, "
                      f"got {value!r}") from e


def apply_overrides(config: ml_collections.ConfigDict,
                    overrides: Iterable[str] | Mapping[str, Any]) -> ml_collections.ConfigDict:
  """Returns a copy of ``config`` with ``key=value`` strings (or a mapping) applied."""
  config = ml_collections.ConfigDict(config.to_dict())  # Deep copy, keeps types.
  config.lock()
  items = list(overrides.items() if isinstance(overrides, Mapping) else (
      _split_override(o) for o in overrides))
  # A new model, optimizer or data source first: its fields replace the old one's before
  # they are set.
  renames = {"model.name": rename_model, "optim.name": rename_optim, "data.name": rename_data}
  for key, value in items:
    if key in renames:
      renames[key](config, str(value))
  for key, value in items:
    if key not in renames:
      set_value(config, key, value)
  return config


def _split_override(text: str) -> tuple[str, str]:
  key, sep, value = text.partition("=")
  if not sep:
    raise ConfigError(f"override {text!r} has no '='; write it as key=value, for example "
                      "optim.learning_rate=3e-3")
  return key.strip().removeprefix("config."), value


def config_from_dict(values: Mapping[str, Any]) -> ml_collections.ConfigDict:
  """Rebuilds a locked config from ``config_to_dict`` output (a run's config.json).

  The saved values are laid over today's default config, so a run folder made
  before a key existed gets that key's default (lists become tuples again). A run
  trained on a model object given to the API needs it handed over again
  (``parts.given``).
  """
  from jaxdl.configs.default import get_config  # Here: default.py imports nothing of ours.

  config = get_config()
  flat = flatten(values)
  plain = lambda v: tuple(v) if isinstance(v, list) else v
  config.experiment = flat.get("experiment", "")
  # Sections whose keys are a part's own: rebuilt whole, then completed. Older runs saved
  # every model's fields, sgd's momentum for every optimizer and every data source's
  # fields: tolerated, dropped.
  sections = ("model.", "optim.", "constraints.", "data.")
  config.model = ml_collections.ConfigDict(
      {k[6:]: plain(v) for k, v in flat.items() if k.startswith("model.")})
  config.optim = ml_collections.ConfigDict({**config.optim.to_dict(), **{
      k[6:]: plain(v) for k, v in flat.items() if k.startswith("optim.")}})
  config.constraints = ml_collections.ConfigDict(values.get("constraints", {}))
  config.data = ml_collections.ConfigDict({**config.data.to_dict(), **{
      k[5:]: plain(v) for k, v in flat.items() if k.startswith("data.")}})
  complete_data(config, tolerant=True)
  complete_model(config, tolerant=True)
  complete_optim(config, tolerant=True)
  config.lock()
  for key, value in flat.items():
    if not key.startswith(sections):
      set_value(config, key, plain(value))
  return config
