"""Keras on TensorFlow: the seed's own code ('keras-fit') and a custom tf.function step."""

import keras
import tensorflow as tf

from benchmark_impls import workloads
from benchmark_impls.keras_models import FitRunner, seed_model
from benchmark_impls.workloads import BATCH, LEARNING_RATE, POOL_BATCHES, Workload, random_data


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
  if fit:
    runner = FitRunner(workload)
    runner.info["tensorflow"] = tf.__version__
    return runner
  return StepRunner(workload)
