"""Models by name: ``build(config.model, spec)`` is the one place config becomes a module."""

import flax.linen as nn
import ml_collections

from jaxdl.data.spec import DataSpec
from jaxdl.errors import ConfigError
from jaxdl.models.cnn import DeepCNN, SeedCNN
from jaxdl.models.recurrent import (CELLS, Bidirectional, GRUCell, LSTMCell, RecurrentLayer,
                                    RecurrentStack, SimpleRNNCell)
from jaxdl.models.sequence import SequenceModel, TextClassifier
from jaxdl.models.stats import count_params, flops_per_example


def _seed_cnn(cfg: ml_collections.ConfigDict, spec: DataSpec) -> nn.Module:
  return SeedCNN(num_classes=spec.num_classes)


def _deep_cnn(cfg: ml_collections.ConfigDict, spec: DataSpec) -> nn.Module:
  if not cfg.widths or cfg.blocks_per_stage < 1:
    raise ConfigError("deep_cnn needs model.widths (one width per stage) and "
                      "model.blocks_per_stage >= 1")
  return DeepCNN(num_classes=spec.num_classes, widths=tuple(cfg.widths),
                 blocks_per_stage=cfg.blocks_per_stage, batch_norm=cfg.batch_norm,
                 residual=cfg.residual, dropout_rate=cfg.dropout_rate)


def _recurrent_fields(cfg: ml_collections.ConfigDict) -> dict:
  if cfg.cell not in CELLS:
    raise ConfigError(f"unknown model.cell {cfg.cell!r}; choose one of {', '.join(CELLS)}")
  if not cfg.hidden_sizes or min(cfg.hidden_sizes) < 1:
    raise ConfigError("model.hidden_sizes needs one positive width per recurrent layer")
  if cfg.unroll < 1:
    raise ConfigError(f"model.unroll must be at least 1, got {cfg.unroll}")
  return dict(cell=cfg.cell, hidden_sizes=tuple(cfg.hidden_sizes),
              bidirectional=cfg.bidirectional, dropout_rate=cfg.dropout_rate, unroll=cfg.unroll,
              activation=cfg.activation, forget_bias=cfg.forget_bias)


def _text_rnn(cfg: ml_collections.ConfigDict, spec: DataSpec) -> nn.Module:
  return TextClassifier(vocab_size=spec.vocab_size, embed_dim=cfg.embed_dim,
                        num_classes=spec.num_classes, **_recurrent_fields(cfg))


def _seq_rnn(cfg: ml_collections.ConfigDict, spec: DataSpec) -> nn.Module:
  outputs = 1 if spec.task == "regression" else spec.num_classes
  return SequenceModel(num_outputs=outputs, **_recurrent_fields(cfg))


MODELS = {"seed_cnn": _seed_cnn, "deep_cnn": _deep_cnn, "text_rnn": _text_rnn,
          "seq_rnn": _seq_rnn}
# What each model takes: image [h, w, c], token ids [time], or float sequences [time, features].
_INPUTS = {"seed_cnn": ("images", 3, "float32"), "deep_cnn": ("images", 3, "float32"),
           "text_rnn": ("token ids", 1, "int32"), "seq_rnn": ("float sequences", 2, "float32")}


def build(model_config: ml_collections.ConfigDict, spec: DataSpec) -> nn.Module:
  """Returns the Flax module named by ``model_config.name`` for data ``spec``."""
  if model_config.name not in MODELS:
    raise ConfigError(f"unknown model.name {model_config.name!r}; choose one of "
                      f"{', '.join(sorted(MODELS))}")
  what, rank, dtype = _INPUTS[model_config.name]
  if len(spec.input_shape) != rank or spec.input_dtype != dtype:
    fits = [name for name, (_, r, d) in _INPUTS.items()
            if r == len(spec.input_shape) and d == spec.input_dtype]
    raise ConfigError(f"model {model_config.name!r} takes {what}, but {spec.name} gives "
                      f"{spec.input_dtype} inputs of shape {spec.input_shape}; use model.name "
                      f"{' or '.join(repr(f) for f in fits) or 'of another kind'}")
  return MODELS[model_config.name](model_config, spec)


__all__ = ["Bidirectional", "DeepCNN", "GRUCell", "LSTMCell", "MODELS", "RecurrentLayer",
           "RecurrentStack", "SeedCNN", "SequenceModel", "SimpleRNNCell", "TextClassifier",
           "build", "count_params", "flops_per_example"]
