"""Convolutional classifiers: the seed's Keras CNN and a configurable deep CNN."""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdl.models.conv_pool import ConvReluPool
from jaxdl.models.convolution import convolution
from jaxdl.models.layers import glorot_uniform, max_pool, require_spatial
from jaxdl.models.part import IMAGES, ModelPart


class SeedCNN(nn.Module):
  """Exactly the seed's Keras model (section 4.1).

  Conv(32, 3x3, relu) -> MaxPool(2x2) -> Conv(64, 3x3, relu) -> MaxPool(2x2) ->
  Conv(64, 3x3, relu) -> Flatten -> Dense(64, relu) -> Dense(num_classes), with
  Keras's defaults: 'VALID' padding, Glorot-uniform kernels, zero biases. The
  softmax of the seed's last layer lives in the loss. On 28x28x1 inputs with 10
  classes it has 93,322 parameters, like the Keras model.

  Attributes:
    num_classes: size of the output layer.
    conv_kernel: what runs the convolutions in the train step: 'auto', 'xla'
      or 'native' (see convolution.py).
  """

  num_classes: int = 10
  conv_kernel: str = "auto"

  @nn.compact
  def __call__(self, inputs: jax.Array, *, train: bool = False,
               mask: jax.Array | None = None) -> jax.Array:
    """Maps ``<float32>[batch, height, width, channels]`` images to ``[batch, num_classes]`` logits.

    ``train`` and ``mask`` are accepted for a uniform model interface; this model
    has neither dropout nor batch norm.
    """
    del train, mask
    # Conv -> relu -> max pool blocks are one layer (fused in the train step where the
    # native kernel applies), named like the nn.Conv each replaces: the same parameters.
    block = lambda features, name: ConvReluPool(features, (3, 3), "VALID", window=2,
                                                conv_kernel=self.conv_kernel, name=name)
    x = block(32, "Conv_0")(inputs)
    require_spatial(x, "SeedCNN", "its second convolution", 18)
    x = block(64, "Conv_1")(x)
    require_spatial(x, "SeedCNN", "its third convolution", 18)
    x = nn.relu(nn.Conv(64, (3, 3), padding="VALID", kernel_init=glorot_uniform,
                        conv_general_dilated=convolution(self.conv_kernel), name="Conv_2")(x))
    require_spatial(x, "SeedCNN", "its dense layers", 18)
    x = x.reshape(x.shape[0], -1)  # Keras Flatten of NHWC: same element order.
    x = nn.relu(nn.Dense(64, kernel_init=glorot_uniform)(x))
    return nn.Dense(self.num_classes, kernel_init=glorot_uniform)(x)


class ConvBlock(nn.Module):
  """3x3 conv (+ batch norm) + relu, with an optional residual connection.

  With ``residual``, the block computes relu(x' + bn(conv(x))), where x' is x, or
  a 1x1 projection of x when the widths differ.
  """

  features: int
  batch_norm: bool
  residual: bool
  conv_kernel: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool, mask: jax.Array | None) -> jax.Array:
    convolve = convolution(self.conv_kernel)
    y = nn.Conv(self.features, (3, 3), padding="SAME", use_bias=not self.batch_norm,
                kernel_init=nn.initializers.he_normal(), conv_general_dilated=convolve)(x)
    if self.batch_norm:
      bn_mask = None if mask is None else jnp.broadcast_to(
          mask[:, None, None, None] > 0, y.shape)
      y = nn.BatchNorm(use_running_average=not train, momentum=0.9)(y, mask=bn_mask)
    if not self.residual:
      return nn.relu(y)
    if x.shape[-1] != self.features:
      x = nn.Conv(self.features, (1, 1), use_bias=False, kernel_init=glorot_uniform,
                  conv_general_dilated=convolve)(x)
    return nn.relu(x + y)


class DeepCNN(nn.Module):
  """The seed's "deep CNN" (section 3.2): VGG-style stages of conv blocks.

  Each stage has ``blocks_per_stage`` 3x3 conv blocks of the stage's width;
  a 2x2 max pool follows every stage but the last, then global average pooling
  and a dense layer make the logits. Depth (``len(widths) * blocks_per_stage`` conv layers) and width are
  config values; batch norm and residual connections keep deep stacks trainable.

  Attributes:
    num_classes: size of the output layer.
    widths: channels of each stage.
    blocks_per_stage: conv layers in each stage.
    batch_norm: batch norm after each conv (running averages in eval).
    residual: identity (or 1x1-projected) skip connections around each block.
    dropout_rate: dropout before the output layer.
    conv_kernel: what runs the convolutions in the train step (see convolution.py).
  """

  num_classes: int = 10
  widths: Sequence[int] = (32, 64, 128)
  blocks_per_stage: int = 2
  batch_norm: bool = True
  residual: bool = True
  dropout_rate: float = 0.0
  conv_kernel: str = "auto"

  @nn.compact
  def __call__(self, inputs: jax.Array, *, train: bool = False,
               mask: jax.Array | None = None) -> jax.Array:
    """Maps ``<float32>[batch, height, width, channels]`` to ``[batch, num_classes]`` logits.

    Args:
      inputs: NHWC images.
      train: batch statistics and dropout in training, running averages in eval.
      mask: ``<float32>[batch]``, 1 for real examples: padding is left out of the
        batch-norm statistics.
    """
    x = inputs
    min_input = 2 ** (len(self.widths) - 1)
    for stage, width in enumerate(self.widths):
      require_spatial(x, "DeepCNN", f"stage {stage + 1}", min_input)
      for _ in range(self.blocks_per_stage):
        x = ConvBlock(width, self.batch_norm, self.residual, self.conv_kernel)(
            x, train=train, mask=mask)
      if stage < len(self.widths) - 1:
        x = max_pool(x)
    x = jnp.mean(x, axis=(1, 2))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return nn.Dense(self.num_classes, kernel_init=glorot_uniform)(x)


def _deep_cnn(config, model_config, spec) -> DeepCNN:
  del config
  return DeepCNN(num_classes=spec.num_classes, widths=tuple(model_config.widths),
                 blocks_per_stage=model_config.blocks_per_stage,
                 batch_norm=model_config.batch_norm, residual=model_config.residual,
                 dropout_rate=model_config.dropout_rate, conv_kernel=model_config.conv_kernel)


# Convolutions in the train step: auto (jaxdl's C++ kernel for float32 on CPU), xla or native.
CONV_FIELDS = {"conv_kernel": "auto"}

SEED_CNN = ModelPart(
    "seed_cnn", lambda config, model_config, spec: SeedCNN(
        num_classes=spec.num_classes, conv_kernel=model_config.conv_kernel),
    fields=dict(CONV_FIELDS), inputs=IMAGES, cite_keys=lambda fields: ["lecun1998gradient"],
    description="the seed's Keras CNN (SeedCNN)")

DEEP_CNN = ModelPart(
    "deep_cnn", _deep_cnn,
    fields={
        "widths": (32, 64, 128),  # One width per stage; each stage ends in a 2x2 max pool.
        "blocks_per_stage": 2,  # Conv layers per stage.
        "batch_norm": True,
        "residual": True,
        "dropout_rate": 0.0,  # Before the output layer.
        **CONV_FIELDS,
    },
    inputs=IMAGES,
    cite_keys=lambda f: (["simonyan2015very"] + ["ioffe2015batch"] * bool(f["batch_norm"])
                         + ["he2016deep"] * bool(f["residual"])),
    description="a VGG-style DeepCNN")
