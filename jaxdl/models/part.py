"""The model record every consumer asks, and how a user's module becomes one.

A ``ModelPart`` says how to build a model from its config fields and the
data's DataSpec, which fields it has (so a typo in ``config.model`` is an
error), what inputs it takes, how a paper cites it, and whether it has LSTM
gates to trace. The built-in models are records like any user's: the loop,
``explain`` and ``cite`` ask the record and never dispatch on a name.

A user's model is a ``flax.linen.Module`` class (its dataclass fields with
defaults are its config fields), a Flax NNX ``Module`` class (its constructor's
keyword arguments are; it runs through flax's ``nnx.bridge.to_linen``), a
factory ``f(model_config, spec) -> nn.Module``, or a module instance. Fields
that the data decides (``num_classes``, ``num_outputs``, ``vocab_size``) are
filled from the DataSpec.

The calling contract: ``__call__(self, x, *, train)`` returns logits (or
outputs for regression); ``mask`` and per-example arrays the data carries
(``lengths`` for text) are passed by keyword where ``__call__`` accepts them.
"""

import dataclasses
import functools
import inspect
import json
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import ml_collections
from flax import nnx

from jaxdl.data.spec import DataSpec
from jaxdl.errors import ConfigError

# Module fields the data decides; a user's model declares them to receive them.
SPEC_FIELDS = ("num_classes", "num_outputs", "vocab_size")
Builder = Callable[[ml_collections.ConfigDict, ml_collections.ConfigDict, DataSpec], nn.Module]


@dataclasses.dataclass(frozen=True)
class InputKind:
  """What a model takes: e.g. images ``[h, w, c]`` float32."""

  what: str
  rank: int
  dtype: str

  def fits(self, spec: DataSpec) -> bool:
    return len(spec.input_shape) == self.rank and spec.input_dtype == self.dtype


IMAGES = InputKind("images", 3, "float32")
TOKENS = InputKind("token ids", 1, "int32")
SEQUENCES = InputKind("float sequences", 2, "float32")


@dataclasses.dataclass(frozen=True)
class ModelPart:
  """A model jaxdl can build.

  Attributes:
    name: what ``config.model.name`` says (a built-in name, ``PKG.MODULE:ATTR``,
      ``get_model`` or ``python:...``).
    build: ``(config, model_config, spec) -> nn.Module``.
    fields: its ``config.model`` fields and their defaults; None when the
      experiment's own keys are taken as they are (a factory's).
    required: fields without a default, which ``config.model`` must set.
    inputs: the inputs it takes (None: whatever the data gives).
    cite_keys: ``model_config -> BibTeX keys`` of the papers behind it.
    description: how citations and reports name it.
    lstm_cell: ``params -> the first LSTM layer's cell parameters`` (or None),
      for gate traces; None for models without such layers.
    prepare_params: ``(params, model_config, datasets) -> params``: the freshly initialised
      parameters made ready with the data (e.g. pretrained word vectors for the vocabulary),
      before the first step; None to keep them as initialised.
  """

  name: str
  build: Builder
  fields: Mapping[str, Any] | None = None
  required: tuple[str, ...] = ()
  inputs: InputKind | None = None
  cite_keys: Callable[[Mapping[str, Any]], list[str]] = lambda fields: []
  description: str = ""
  lstm_cell: Callable[[Mapping[str, Any]], Any] | None = None
  prepare_params: Callable[[Any, ml_collections.ConfigDict, Any], Any] | None = None

  @property
  def is_builtin(self) -> bool:
    return not (":" in self.name or self.name == "get_model")


def _config_value(value: Any) -> bool:
  """Whether a default can live in a config (JSON scalars and tuples of them)."""
  try:
    json.dumps(value)
  except (TypeError, ValueError):
    return False
  return not isinstance(value, dict)


def _spec_values(spec: DataSpec) -> dict[str, Any]:
  outputs = spec.num_classes if spec.task == "classification" else 1
  return {"num_classes": outputs, "num_outputs": outputs, "vocab_size": spec.vocab_size}


def _fields_of(params: Mapping[str, tuple[bool, Any]]) -> tuple[dict, tuple]:
  """``(fields with config-able defaults, required names)`` from ``{name: (has_default, default)}``."""
  fields, required = {}, []
  for name, (has_default, default) in params.items():
    if name in SPEC_FIELDS:
      continue
    if not has_default:
      required.append(name)
    elif _config_value(default):
      fields[name] = tuple(default) if isinstance(default, list) else default
  return fields, tuple(required)


def _linen_params(cls: type) -> dict[str, tuple[bool, Any]]:
  out = {}
  for f in dataclasses.fields(cls):
    if f.name in ("parent", "name") or not f.init:
      continue
    has = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    default = f.default if f.default is not dataclasses.MISSING else (
        f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
    out[f.name] = (has, default)
  return out


def _init_params(cls: type) -> dict[str, tuple[bool, Any]]:
  out = {}
  for name, p in inspect.signature(cls.__init__).parameters.items():
    if name in ("self", "rngs") or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
      continue
    out[name] = (p.default is not p.empty, None if p.default is p.empty else p.default)
  return out


def _kwargs(model_config: ml_collections.ConfigDict, spec: DataSpec,
            params: Mapping[str, Any]) -> dict[str, Any]:
  values = {k: model_config[k] for k in params if k in model_config}
  values.update({k: v for k, v in _spec_values(spec).items() if k in params})
  return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def linen_class_part(name: str, cls: type) -> ModelPart:
  """A ``flax.linen.Module`` class: its dataclass fields are its config fields."""
  params = _linen_params(cls)
  fields, required = _fields_of(params)
  build = lambda config, model_config, spec: cls(**_kwargs(model_config, spec, params))
  return ModelPart(name, build, fields, required, description=f"user model {name}")


def nnx_class_part(name: str, cls: type) -> ModelPart:
  """A Flax NNX ``Module`` class, run through flax's own ``nnx.bridge.to_linen``."""
  params = _init_params(cls)
  fields, required = _fields_of(params)
  build = lambda config, model_config, spec: nnx.bridge.to_linen(
      cls, **_kwargs(model_config, spec, params))
  return ModelPart(name, build, fields, required, description=f"user model {name} (Flax NNX)")


def factory_part(name: str, factory: Callable, whole_config: bool = False) -> ModelPart:
  """``factory(model_config, spec)`` (or ``get_model(config, spec)`` with ``whole_config``)."""

  def build(config, model_config, spec):
    module = factory(config if whole_config else model_config, spec)
    if not isinstance(module, nn.Module):
      raise ConfigError(f"model {name} returned {type(module).__name__}, not a flax.linen.Module "
                        "(wrap an NNX module with flax.nnx.bridge.to_linen)")
    return module

  return ModelPart(name, build, None, description=f"user model {name}")


def part_from_object(name: str, obj: Any) -> ModelPart:
  """The record of a user's model given as a record, a class, a factory or an instance."""
  if isinstance(obj, ModelPart):
    return dataclasses.replace(obj, name=name)
  if isinstance(obj, type) and issubclass(obj, nn.Module):
    return linen_class_part(name, obj)
  if isinstance(obj, type) and issubclass(obj, nnx.Module):
    return nnx_class_part(name, obj)
  if isinstance(obj, nn.Module):
    return ModelPart(name, lambda config, model_config, spec: obj, None,
                     description=f"user model {name}")
  if callable(obj):
    return factory_part(name, obj)
  raise ConfigError(f"model {name} is a {type(obj).__name__}; give a ModelPart, a "
                    "flax.linen.Module class, a Flax NNX Module class, a factory "
                    "f(model_config, spec) or a module instance")


@functools.lru_cache(maxsize=256)
def _keywords(target: Any) -> tuple[frozenset[str], bool]:
  params = inspect.signature(target).parameters.values()
  names = frozenset(p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
  return names, any(p.kind == p.VAR_KEYWORD for p in params)


def call_target(module: nn.Module) -> Any:
  """The function whose signature says what a module's ``__call__`` accepts."""
  if isinstance(module, nnx.bridge.ToLinen):
    return module.nnx_class.__call__
  return type(module).__call__


def call_kwargs(module: nn.Module, candidates: Mapping[str, Any]) -> dict[str, Any]:
  """The keyword arguments of ``candidates`` that ``module.__call__`` accepts."""
  names, anything = _keywords(call_target(module))
  return {k: v for k, v in candidates.items() if anything or k in names}


# How a model's __call__ may spell the mode: jaxdl's and Flax's ``train``, Keras's
# ``training``, Flax layers' ``deterministic`` (its opposite).
TRAIN_FLAGS = ("train", "training", "deterministic")


def train_flags(module: nn.Module, train: bool) -> dict[str, bool]:
  """The mode as ``module.__call__`` spells it (``train`` alone for a ``**kwargs`` call)."""
  names, anything = _keywords(call_target(module))
  flags = {"train": train, "training": train, "deterministic": not train}
  spelled = {k: v for k, v in flags.items() if k in names}
  return spelled or ({"train": train} if anything else {})


def accepted_train_flags(module: nn.Module) -> list[str]:
  """The mode arguments ``module.__call__`` takes ([] : it cannot be told train from eval)."""
  return list(train_flags(module, True))
