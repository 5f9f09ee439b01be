"""JAX with cuDNN's LSTM ('jax-cudnn'): the seed LSTM through ``jax.experimental.rnn.lstm``.

The library path a JAX user (and Keras 3's JAX backend, for unmasked LSTMs on a
GPU) reaches for: one cuDNN call runs both stacked LSTM(64) layers, forward and
backward. The model is the seed's: Embedding(10000, 64) -> LSTM(64, sequences)
-> LSTM(64) -> Dense(10, softmax), Adam 1e-3 (optax), batch 128. cuDNN's LSTM
has two bias vectors per layer (input and recurrent; Keras has one), so it has
512 more parameters than the seed's model. GPU only: cuDNN's call has no CPU
lowering; tests check the model on a CPU with ``lstm_ref``, JAX's reference for
the same weights (``reference_lstm``).
"""

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import rnn

from benchmark_impls import workloads
from benchmark_impls.workloads import (BATCH, LEARNING_RATE, POOL_BATCHES, Unavailable, Workload,
                                       random_data)

LAYERS = 2


def reference_lstm(x, h_0, c_0, weights, seq_lengths, *, input_size, hidden_size, num_layers,
                   dropout, bidirectional):
  """``rnn.lstm``'s signature over JAX's reference (any backend), for tests on a CPU."""
  unpacked = rnn.unpack_lstm_weights(weights, input_size, hidden_size, num_layers, bidirectional)
  return rnn.lstm_ref(x, h_0, c_0, *unpacked, seq_lengths, input_size, hidden_size, num_layers,
                      dropout, bidirectional)


def init_params(key: jax.Array, w: Workload) -> dict:
  """Embedding [V, E], cuDNN's flat weights of 2 layers, Dense [H, classes] and its bias."""
  k_embed, k_lstm, k_dense = jax.random.split(key, 3)
  return {"embed": jax.random.uniform(k_embed, (w.vocab_size, w.embed_dim), minval=-0.05,
                                      maxval=0.05),
          "lstm": rnn.init_lstm_weight(k_lstm, w.embed_dim, w.hidden, LAYERS, False),
          "dense": jax.random.normal(k_dense, (w.hidden, w.num_classes)) / np.sqrt(w.hidden),
          "dense_bias": jnp.zeros(w.num_classes)}


def logits(params: dict, tokens: jax.Array, w: Workload, lstm: Callable = rnn.lstm) -> jax.Array:
  """tokens [B, T] int32 -> logits [B, classes]: the last layer's final hidden state, dense."""
  x = params["embed"][tokens]
  zeros = jnp.zeros((LAYERS, tokens.shape[0], w.hidden), x.dtype)
  lengths = jnp.full((tokens.shape[0],), tokens.shape[1], jnp.int32)
  _, h_n, _ = lstm(x, zeros, zeros, params["lstm"], lengths, input_size=w.embed_dim,
                   hidden_size=w.hidden, num_layers=LAYERS, dropout=0.0, bidirectional=False)
  return h_n[-1] @ params["dense"] + params["dense_bias"][None, :]


def make_step(w: Workload, tx: optax.GradientTransformation, lstm: Callable = rnn.lstm):
  """``step(params, opt_state, tokens, labels) -> (params, opt_state, loss)``, jitted."""
  def loss_fn(params, tokens, labels):
    return optax.softmax_cross_entropy_with_integer_labels(
        logits(params, tokens, w, lstm), labels).mean()

  @functools.partial(jax.jit, donate_argnums=(0, 1))
  def step(params, opt_state, tokens, labels):
    loss, grads = jax.value_and_grad(loss_fn)(params, tokens, labels)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  return step


class Runner(workloads.Runner):
  def __init__(self, workload: Workload, lstm: Callable = rnn.lstm):
    self.workload = workload
    self.params = init_params(jax.random.key(0), workload)
    tx = optax.adam(LEARNING_RATE)
    self.opt_state = tx.init(self.params)
    self.train_step = make_step(workload, tx, lstm)
    x, y = random_data(workload, BATCH * POOL_BATCHES)
    self.batches = [(jnp.asarray(x[i * BATCH:(i + 1) * BATCH]),
                     jnp.asarray(y[i * BATCH:(i + 1) * BATCH])) for i in range(POOL_BATCHES)]
    self.examples_per_step = BATCH
    self.step = 0
    self.loss = None
    self.info = {"jax": jax.__version__, "devices": [str(d) for d in jax.devices()],
                 "lstm": getattr(lstm, "__name__", str(lstm))}

  def run(self, steps: int) -> None:
    for _ in range(steps):
      tokens, labels = self.batches[self.step % len(self.batches)]
      self.params, self.opt_state, self.loss = self.train_step(self.params, self.opt_state,
                                                               tokens, labels)
      self.step += 1
    jax.block_until_ready(self.loss)


def build(workload: Workload) -> Runner:
  if workload.model != "lstm" or workload.members != 1:
    raise NotImplementedError("jax-cudnn is the seed LSTM, one model")
  if jax.default_backend() != "gpu":
    raise Unavailable(f"cuDNN's LSTM needs a GPU (JAX's backend here: {jax.default_backend()})")
  return Runner(workload)
