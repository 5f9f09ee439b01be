"""The seed's Keras models and ``model.fit``, on whichever backend Keras was imported with.

keras_impl.py runs them on TensorFlow ('keras-fit'), keras_jax_impl.py on JAX
('keras-jax'); the backend is chosen before ``keras`` is first imported.
"""

import keras
import numpy as np

from benchmark_impls import workloads
from benchmark_impls.workloads import BATCH, LEARNING_RATE, POOL_BATCHES, Workload, random_data


def seed_model(w: Workload) -> keras.Model:
  """The seed's Sequential models (section 4.1 and 4.2), layer for layer."""
  layers = keras.layers
  if w.model == "cnn":
    return keras.Sequential([
        keras.Input(w.image_shape),
        layers.Conv2D(32, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"), layers.Flatten(),
        layers.Dense(64, activation="relu"), layers.Dense(w.num_classes, activation="softmax")])
  return keras.Sequential([
      keras.Input((w.seq_len,), dtype="int32"),
      layers.Embedding(input_dim=w.vocab_size, output_dim=w.embed_dim),
      layers.LSTM(w.hidden, return_sequences=True), layers.LSTM(w.hidden),
      layers.Dense(w.num_classes, activation="softmax")])


class FitRunner(workloads.Runner):
  """``model.compile(optimizer='adam', ...)`` and ``model.fit``, as the seed's code does."""

  def __init__(self, workload: Workload):
    keras.utils.set_random_seed(0)
    self.workload = workload
    self.model = seed_model(workload)
    self.model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE),
                       loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    self.x, self.y = random_data(workload, BATCH * POOL_BATCHES)
    self.examples_per_step = BATCH
    self.info = {"keras": keras.__version__, "backend": keras.backend.backend()}

  def warm_up(self) -> None:
    self.prepare(1)
    self.run(1)
    self.info["jit_compile"] = bool(self.model.jit_compile)  # Keras's 'auto', resolved.

  def prepare(self, steps: int) -> None:
    reps = -(-steps * BATCH // len(self.y))
    self.fx = np.concatenate([self.x] * reps)[:steps * BATCH]
    self.fy = np.concatenate([self.y] * reps)[:steps * BATCH]

  def run(self, steps: int) -> None:
    assert len(self.fy) == steps * BATCH, "prepare(steps) first"
    self.model.fit(self.fx, self.fy, batch_size=BATCH, epochs=1, verbose=0)
