"""Keras on TensorFlow: the seed's own code ('keras-fit') and a custom tf.function step."""

import numpy as np
import tensorflow as tf
import keras

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
    self.info = {"tensorflow": tf.__version__, "keras": keras.__version__}

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


class StepRunner(workloads.Runner):
  """A custom training step in one ``tf.function`` (GradientTape + apply_gradients)."""

  def __init__(self, workload: Workload):
    keras.utils.set_random_seed(0)
    self.model = seed_model(workload)
    self.optimizer = keras.optimizers.Adam(LEARNING_RATE)
    self.loss_fn = keras.losses.SparseCategoricalCrossentropy()
    x, y = random_data(workload, BATCH * POOL_BATCHES)
    self.batches = [(tf.constant(x[i * BATCH:(i + 1) * BATCH]),
                     tf.constant(y[i * BATCH:(i + 1) * BATCH])) for i in range(POOL_BATCHES)]
    self.examples_per_step = BATCH
    self.step = 0
    self.info = {"tensorflow": tf.__version__, "keras": keras.__version__, "jit_compile": False}
    variables = self.model.trainable_variables

    @tf.function
    def train_step(x, y):
      with tf.GradientTape() as tape:
        loss = self.loss_fn(y, self.model(x, training=True))
      self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
      return loss

    self.train_step = train_step

  def run(self, steps: int) -> None:
    for _ in range(steps):
      loss = self.train_step(*self.batches[self.step % len(self.batches)])
      self.step += 1
    loss.numpy()


def build(workload: Workload, fit: bool):
  if workload.members != 1:
    raise NotImplementedError("the Keras runners train one model")
  return FitRunner(workload) if fit else StepRunner(workload)
