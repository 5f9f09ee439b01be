"""Models as parts: ``resolve(name)`` gives the record, ``build`` the one place config becomes a module.

``config.model.name`` is a built-in name (``seed_cnn``, ``deep_cnn``,
``text_rnn``, ``seq_rnn``, ``kim_cnn``), an import path ``PKG.MODULE:ATTR`` to the user's
model, or ``get_model`` for the experiment file's ``get_model(config, spec)``;
the Python API also takes the objects themselves. See part.py for the contract.
"""

import flax.linen as nn
import ml_collections

from jaxdl import parts
from jaxdl.data.spec import DataSpec
from jaxdl.errors import ConfigError
from jaxdl.models.cnn import DEEP_CNN, SEED_CNN, DeepCNN, SeedCNN
from jaxdl.models.conv_pool import ConvReluPool, conv_relu_max_pool
from jaxdl.models.convolution import convolution
from jaxdl.models.kim import KIM_CNN, KimCNN
from jaxdl.models.part import (IMAGES, SEQUENCES, TOKENS, InputKind, ModelPart, call_kwargs,
                               factory_part, part_from_object)
from jaxdl.models.recurrent import (CELLS, Bidirectional, GRUCell, LSTMCell, RecurrentLayer,
                                    RecurrentStack, SimpleRNNCell)
from jaxdl.models.sequence import SEQ_RNN, TEXT_RNN, SequenceModel, TextClassifier
from jaxdl.models.stats import count_params, flops_per_example

MODELS: parts.Registry[ModelPart] = parts.Registry("model", part_from_object, "model.name",
                                                   argument="model")
for _part in (SEED_CNN, DEEP_CNN, TEXT_RNN, SEQ_RNN, KIM_CNN):
  MODELS.register(_part.name, _part)
BUILTIN: dict[str, ModelPart] = {name: MODELS.resolve(name) for name in MODELS.names()}
GET_MODEL = "get_model"  # config.model.name for the experiment file's get_model(config, spec).


def resolve(name: str, experiment: str = "") -> ModelPart:
  """The record of the model ``config.model.name`` names.

  Args:
    name: a built-in name, ``PKG.MODULE:ATTR``, ``get_model``, or ``python:...`` (an
      object the API was given: ``parts.given``).
    experiment: the experiment file (import paths resolve from its folder;
      ``get_model`` is defined in it).
  """
  if name == GET_MODEL and parts.given_object(MODELS.argument, name) is None:
    if not experiment:
      raise ConfigError("model.name=get_model needs an experiment file that defines "
                        "get_model(config, spec)")
    module_name = parts.module_name_of(experiment)
    factory = parts.import_object(f"{module_name}:get_model", experiment, "model")
    return factory_part(GET_MODEL, factory, whole_config=True)
  return MODELS.resolve(name, experiment)


def check_inputs(part: ModelPart, spec: DataSpec) -> None:
  """Refuses data the model cannot take, naming the models that fit."""
  if part.inputs is None or part.inputs.fits(spec):
    return
  fits = [p.name for p in BUILTIN.values() if p.inputs and p.inputs.fits(spec)]
  raise ConfigError(f"model {part.name!r} takes {part.inputs.what}, but {spec.name} gives "
                    f"{spec.input_dtype} inputs of shape {spec.input_shape}; use model.name "
                    f"{' or '.join(repr(f) for f in fits) or 'of another kind'}")


def build(config: ml_collections.ConfigDict, spec: DataSpec,
          part: ModelPart | None = None) -> nn.Module:
  """The Flax module for ``config`` (its ``model`` group) and data ``spec``.

  Args:
    config: the run's config.
    spec: the data's facts.
    part: the model's record (default: resolved from ``config.model.name``).
  """
  part = part or resolve(config.model.name, config.experiment)
  check_inputs(part, spec)
  missing = [f for f in part.required if f not in config.model]
  if missing:
    raise ConfigError(f"model {part.name} needs config.model.{missing[0]} (it has no default); "
                      "set it in the experiment file")
  return part.build(config, config.model, spec)


__all__ = ["BUILTIN", "KIM_CNN", "KimCNN", "MODELS", "Bidirectional", "CELLS", "ConvReluPool", "DeepCNN", "GRUCell", "IMAGES",
           "InputKind", "LSTMCell", "ModelPart", "convolution", "conv_relu_max_pool", "RecurrentLayer", "RecurrentStack", "SEQUENCES", "SeedCNN",
           "SequenceModel", "SimpleRNNCell", "TOKENS", "TextClassifier", "build", "call_kwargs",
           "check_inputs", "count_params", "flops_per_example", "resolve"]
