"""Keras 3 on its JAX backend ('keras-jax'): the seed's own code, ``model.fit``, on JAX.

On a GPU Keras runs an unmasked LSTM through cuDNN (``jax.experimental.rnn``),
which the seed's model is (its Embedding has no mask); on a CPU through its
generic ``lax.scan`` loop. This module must be the first to import ``keras`` in
its process: the backend is read then.
"""

import os

os.environ["KERAS_BACKEND"] = "jax"

import keras  # noqa: E402

from benchmark_impls.keras_models import FitRunner  # noqa: E402
from benchmark_impls.workloads import Workload  # noqa: E402


def build(workload: Workload) -> FitRunner:
  if workload.members != 1:
    raise NotImplementedError("the Keras runners train one model")
  if keras.backend.backend() != "jax":
    raise RuntimeError(f"keras was imported with the {keras.backend.backend()} backend first")
  return FitRunner(workload)
