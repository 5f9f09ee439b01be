"""The model contract, checked on two real examples before any training step.

A user's model plugs in by convention (``__call__(self, x, *, train)`` returning
``[batch, classes]`` logits); each way to break it silently is caught here, in one line
that names the fix:

- no train flag at all, while the model draws dropout noise or keeps batch statistics:
  jaxdl could never switch them off for evaluation (Keras's ``training`` and Flax's
  ``deterministic`` spellings are passed their values: see ``model_call.py``);
- outputs of the wrong shape for the data (``[batch]`` for a classifier, 3 logits on a
  2-class task), when jaxdl's loss reads them;
- token ids past the end of the embedding table that reads them (found by tracing which
  parameter the ids index, not by guessing field names): JAX fills such rows with NaN.
"""

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.extend.core as jcore
import numpy as np

from jaxdl.data.spec import DataSpec
from jaxdl.errors import ConfigError
from jaxdl.models.part import TRAIN_FLAGS, accepted_train_flags
from jaxdl.training.model_call import apply_model


def check_model(name: str, model: nn.Module, variables: Mapping[str, Any],
                example: Mapping[str, np.ndarray], spec: DataSpec, loss_reads_outputs: bool,
                key: jax.Array) -> None:
  """Raises ConfigError if ``model`` breaks the contract on ``example`` (a batch of 2).

  Args:
    name: the model's name, for the message.
    variables: its initial variables.
    example: a batch of real training examples (``inputs``, ``mask`` and extras).
    spec: the data's facts.
    loss_reads_outputs: whether jaxdl's own loss reads the outputs (not a user objective).
    key: for the dropout draws.
  """
  if not accepted_train_flags(model):
    _check_no_hidden_mode(name, model, variables, example, key)
  if loss_reads_outputs:
    outputs = jax.eval_shape(lambda v: apply_model(model, v, example, train=False), variables)
    _check_outputs(name, outputs, spec, len(example["mask"]))
  if spec.vocab_size and np.issubdtype(np.asarray(example["inputs"]).dtype, np.integer):
    _check_embedding(name, model, variables, example, spec)


def _check_no_hidden_mode(name, model, variables, example, key) -> None:
  signature = "def __call__(self, x, *, train: bool)"
  if "batch_stats" in variables:
    raise ConfigError(f"model {name} keeps batch statistics, but its __call__ takes no train "
                      f"argument ({', '.join(TRAIN_FLAGS)}), so jaxdl cannot switch it to its "
                      f"running averages for evaluation; write `{signature}` and "
                      "`nn.BatchNorm(use_running_average=not train)`")
  draws = [apply_model(model, variables, example, train=True, rngs={"dropout": k})
           for k in jax.random.split(key)]
  if not all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(draws[0]),
                                                   jax.tree_util.tree_leaves(draws[1]))):
    raise ConfigError(f"model {name} draws random numbers (dropout), but its __call__ takes no "
                      f"train argument ({', '.join(TRAIN_FLAGS)}), so jaxdl cannot switch "
                      f"them off for evaluation; write `{signature}` and "
                      "`nn.Dropout(rate, deterministic=not train)`")


def _check_outputs(name: str, outputs: Any, spec: DataSpec, batch: int) -> None:
  if not hasattr(outputs, "shape"):
    raise ConfigError(f"model {name} returns a {type(outputs).__name__}; jaxdl's loss reads one "
                      "array ([batch, classes] logits, or [batch] regression outputs): return "
                      "that, or set config.objective to a loss that reads yours")
  shape = tuple(outputs.shape)
  if spec.task == "classification":
    want = (batch, spec.num_classes)
    if shape != want:
      got = f"{shape[1]} logits per example" if len(shape) == 2 and shape[0] == batch else \
          f"outputs of shape {list(shape)}"
      raise ConfigError(f"model {name} returns {got} for a batch of {batch}, but {spec.name} "
                        f"has {spec.num_classes} classes: return [batch, {spec.num_classes}] "
                        "logits (a `num_classes` field is filled from the data)")
  elif int(np.prod(shape)) != batch:
    raise ConfigError(f"model {name} returns outputs of shape {list(shape)} for a batch of "
                      f"{batch}, but {spec.name} is a regression task with one target per "
                      "example: return [batch] or [batch, 1]")


def _check_embedding(name, model, variables, example, spec: DataSpec) -> None:
  params = variables["params"]
  rest = {k: v for k, v in variables.items() if k != "params"}
  tokens = np.asarray(example["inputs"])
  others = {k: v for k, v in example.items() if k != "inputs"}

  def forward(p, x):
    return apply_model(model, {"params": p, **rest}, {**others, "inputs": x}, train=False)

  rows = embedding_rows(forward, params, tokens)
  short = [r for r in rows if r < spec.vocab_size]
  if short:
    raise ConfigError(f"model {name}'s embedding table has {short[0]:,} rows, but the data's "
                      f"token ids go up to {spec.vocab_size - 1:,} (vocab_size "
                      f"{spec.vocab_size:,}): ids past the table read NaN; size it from the "
                      "data (a `vocab_size` field is filled) or lower data.vocab_size")


def embedding_rows(forward, params: Any, tokens: np.ndarray) -> list[int]:
  """The row counts of the parameters that ``forward(params, tokens)`` indexes by the tokens."""
  return [rows for _, rows in embedding_tables(forward, params, tokens)]


def embedding_tables(forward, params: Any, tokens: np.ndarray) -> list[tuple[int, int]]:
  """``(leaf, rows)`` of each parameter ``forward(params, tokens)`` indexes by the tokens, in
  the order the lookups run: ``leaf`` is its index in ``jax.tree_util.tree_leaves(params)``.

  Traces ``forward`` and follows the tokens through it: a ``gather`` whose indices come from
  the tokens and whose operand is a parameter (perhaps cast) is an embedding lookup.
  """
  closed = jax.make_jaxpr(forward)(params, tokens)
  leaves = len(jax.tree_util.tree_leaves(params))
  invars = closed.jaxpr.invars
  found: list[tuple[int, int]] = []
  _follow(closed.jaxpr, {v: i for i, v in enumerate(invars[:leaves])}, set(invars[leaves:]),
          found)
  return found


_CASTS = ("convert_element_type", "copy", "copy_p", "reduce_precision")


def _follow(jaxpr: jcore.Jaxpr, tables: dict, tokens: set, found: list[tuple[int, int]]) -> None:
  """Appends ``(leaf, rows)`` per lookup; ``tables`` maps a variable to the leaf it holds."""
  for eqn in jaxpr.eqns:
    ins = [v if isinstance(v, jcore.Var) else None for v in eqn.invars]
    if eqn.primitive.name == "gather" and ins[0] in tables and ins[1] in tokens:
      found.append((tables[ins[0]], int(eqn.invars[0].aval.shape[0])))
    for inner in _sub_jaxprs(eqn.params):
      if len(inner.invars) == len(ins):  # Calls (jit, remat, custom_jvp): argument for argument.
        _follow(inner, {i: tables[o] for i, o in zip(inner.invars, ins) if o in tables},
                {i for i, o in zip(inner.invars, ins) if o in tokens}, found)
    if any(v in tokens for v in ins if v is not None):
      tokens.update(eqn.outvars)
    if eqn.primitive.name in _CASTS and ins and ins[0] in tables:
      tables.update({out: tables[ins[0]] for out in eqn.outvars})


def _sub_jaxprs(params: Mapping[str, Any]) -> list[jcore.Jaxpr]:
  found = []
  for value in params.values():
    for item in value if isinstance(value, (tuple, list)) else (value,):
      if isinstance(item, jcore.ClosedJaxpr):
        found.append(item.jaxpr)
      elif isinstance(item, jcore.Jaxpr):
        found.append(item)
  return found
