"""Models by name: ``build(config.model, spec)`` is the one place config becomes a module."""

import flax.linen as nn
import ml_collections

from jaxdl.data.spec import DataSpec
from jaxdl.errors import ConfigError
from jaxdl.models.cnn import DeepCNN, SeedCNN
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


MODELS = {"seed_cnn": _seed_cnn, "deep_cnn": _deep_cnn}
IMAGE_MODELS = ("seed_cnn", "deep_cnn")


def build(model_config: ml_collections.ConfigDict, spec: DataSpec) -> nn.Module:
  """Returns the Flax module named by ``model_config.name`` for data ``spec``."""
  if model_config.name not in MODELS:
    raise ConfigError(f"unknown model.name {model_config.name!r}; choose one of "
                      f"{', '.join(sorted(MODELS))}")
  if model_config.name in IMAGE_MODELS and len(spec.input_shape) != 3:
    raise ConfigError(f"model {model_config.name!r} takes images [height, width, channels], "
                      f"but {spec.name} gives inputs of shape {spec.input_shape}")
  return MODELS[model_config.name](model_config, spec)


__all__ = ["DeepCNN", "MODELS", "SeedCNN", "build", "count_params", "flops_per_example"]
