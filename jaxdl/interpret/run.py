"""``jaxdl explain``: attributions and LSTM gate traces for the selected model of a run.

What is explained follows the data, so any differentiable model works, the
researcher's own included:
  images: ``class_<c>.png`` per class (image, |saliency|, integrated gradients);
  token ids: ``tokens.html`` (tokens shaded by their integrated-gradients
    attribution, taken with respect to the output of the model's first
    ``flax.linen.Embed``);
  float sequences: ``steps.png`` (attribution per time step);
  models whose record traces LSTM gates (the built-in recurrent ones):
    ``lstm_gates.png`` (input/forget/output gates and cell state over time);
  and ``summary.json`` with each example's completeness error.
"""

import html
import json
import pathlib
import types
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxdl.errors import JaxdlError  # noqa: E402
from jaxdl.interpret.attributions import integrated_gradients, saliency  # noqa: E402
from jaxdl.interpret.gates import lstm_gate_trace  # noqa: E402
from jaxdl.models import IMAGES, SEQUENCES, TOKENS  # noqa: E402
from jaxdl.training import load_run  # noqa: E402
from jaxdl.training.saved_runs import handed_to_run  # noqa: E402
from jaxdl.training.contract import embedding_tables  # noqa: E402
from jaxdl.training.run_folder import read_json  # noqa: E402
from jaxdl.training.steps import apply_model  # noqa: E402


def _example(split, i: int) -> dict[str, Any]:
  """Example ``i`` of ``split`` as a batch of one (with its mask and extras)."""
  batch, _ = split.rows(np.array([i]))
  one = {k: jnp.asarray(v) for k, v in batch.items() if k != "label"}
  return {**one, "mask": jnp.ones((1,), jnp.float32)}


def _output(exp, variables, batch: dict, index) -> jnp.ndarray:
  """The model's output ``index`` (a class's logit, or the regression output) for one example."""
  out = apply_model(exp.model, variables, batch, train=False)[0]
  return out if index is None else out[index]


def _pick(labels: np.ndarray, per_class: int, classes: int) -> dict[int, np.ndarray]:
  return {c: np.flatnonzero(labels == c)[:per_class] for c in range(classes)
          if np.any(labels == c)}


def _explain_images(exp, state, out: pathlib.Path, n: int, steps: int) -> list[dict]:
  test = exp.datasets.test
  variables = state.variables()
  records = []
  for c, index in _pick(test.label, n, exp.datasets.spec.num_classes).items():
    f = lambda x, c=c: _output(exp, variables, {"inputs": x[None],
                                                "mask": jnp.ones((1,), jnp.float32)}, c)
    fig, axes = plt.subplots(3, len(index), figsize=(1.8 * len(index), 5.6), squeeze=False)
    for j, i in enumerate(index):
      x = jnp.asarray(test.model_inputs(i))
      sal = np.abs(np.asarray(saliency(f, x))).max(-1)
      ig, error = integrated_gradients(f, x, jnp.zeros_like(x), steps)
      ig = np.asarray(ig).sum(-1)
      gap = float(f(x) - f(jnp.zeros_like(x)))
      records.append({"example": int(i), "class": c, "completeness_error": float(error),
                      "f(x)-f(baseline)": gap})
      image = np.asarray(x)[..., 0] if x.shape[-1] == 1 else np.asarray(x)
      limit = np.abs(ig).max() or 1.0
      axes[0, j].imshow(image, cmap="gray")
      axes[1, j].imshow(image, cmap="gray")
      axes[1, j].imshow(sal, cmap="hot", alpha=0.6)
      axes[2, j].imshow(image, cmap="gray")
      axes[2, j].imshow(ig, cmap="bwr", vmin=-limit, vmax=limit, alpha=0.6)
      for row in axes[:, j]:
        row.set_xticks([])
        row.set_yticks([])
      axes[0, j].set_title(f"#{i}", fontsize=8)
    for row, name in zip(axes[:, 0], ("input", "|saliency|", "integrated\ngradients")):
      row.set_ylabel(name, fontsize=8)
    fig.suptitle(f"class {c}: evidence for its logit (red +, blue -)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / f"class_{c}.png", dpi=110)
    plt.close(fig)
  return records


class _Embeddings:
  """Reads, or replaces, the output of a model's first ``nn.Embed`` call (Flax interception)."""

  def __init__(self, replacement=None):
    self.replacement, self.seen = replacement, None

  def __call__(self, next_fun, args, kwargs, context):
    first = (self.seen is None and isinstance(context.module, nn.Embed)
             and context.method_name == "__call__")
    out = next_fun(*args, **kwargs) if not first or self.replacement is None else self.replacement
    if first:
      self.seen = out
    return out


def _by_interception(exp, variables, batch: dict):
  """``(embedded [T, D], f(embedded, class) -> logit)`` through the first ``nn.Embed`` call,
  or None for a model without one."""
  reader = _Embeddings()
  with nn.intercept_methods(reader):
    apply_model(exp.model, variables, batch, train=False)
  if reader.seen is None:
    return None

  def f(embedded, index):
    with nn.intercept_methods(_Embeddings(embedded[None])):
      return _output(exp, variables, batch, index)

  return reader.seen[0], f


def _by_table(exp, variables, batch: dict, length: int):
  """The same for any model that looks its tokens up in a parameter (an NNX ``Embed`` through
  the bridge, a hand-written ``table[tokens]``), found by tracing (training/contract.py).

  Each real position gets a row of its own, appended to the table, so the gradient with
  respect to that row is the gradient with respect to the position's vector, even where a
  word repeats; padding keeps its ids, so a model that masks by id still sees padding.
  """
  params = variables["params"]
  leaves, treedef = jax.tree_util.tree_flatten(params)
  tokens = jnp.asarray(batch["inputs"])
  others = {k: v for k, v in batch.items() if k != "inputs"}
  forward = lambda p, x: apply_model(exp.model, {**variables, "params": p},
                                     {**others, "inputs": x}, train=False)
  found = embedding_tables(forward, params, np.asarray(tokens))
  if not found:
    raise JaxdlError(f"model {exp.config.model.name} looks up no parameter by its token ids, so "
                     "jaxdl explain cannot attribute them (attributions are taken with respect "
                     "to the embedded vectors of the first lookup)")
  leaf, rows = found[0]
  table = leaves[leaf]
  time = tokens.shape[1]
  own_rows = jnp.where(jnp.arange(time) < length, rows + jnp.arange(time), tokens[0])

  def f(embedded, index):
    extended = jnp.concatenate([table, embedded.astype(table.dtype)])
    p = treedef.unflatten([extended if i == leaf else x for i, x in enumerate(leaves)])
    return _output(exp, {**variables, "params": p}, {**batch, "inputs": own_rows[None]}, index)

  embedded = table[tokens[0]]
  try:
    f(embedded, 0)
  except flax.errors.ScopeParamShapeError as e:  # Linen checks a parameter's shape.
    raise JaxdlError(f"model {exp.config.model.name} looks its tokens up in a flax.linen "
                     "parameter that is not a flax.linen.Embed, which jaxdl explain cannot "
                     "attribute through; look them up with nn.Embed (or an NNX Embed)") from e
  return embedded, f


def _embedding_route(exp, variables, batch: dict, length: int):
  """``(embedded [T, D], f(embedded, class) -> logit)``: through the first ``nn.Embed`` call
  where there is one, else through the parameter the tokens index."""
  return (_by_interception(exp, variables, batch)
          or _by_table(exp, variables, batch, length))


def _explain_text(exp, state, workdir: pathlib.Path, out: pathlib.Path, n: int,
                  steps: int) -> list[dict]:
  vocab = read_json(workdir / "vocab.json") if (workdir / "vocab.json").exists() else None
  test = exp.datasets.test
  variables = state.variables()
  classes = exp.datasets.spec.class_names or tuple(map(str, range(exp.datasets.spec.num_classes)))
  parts, records = [], []
  for i in range(min(n, len(test))):
    batch = _example(test, i)
    tokens, label = test.model_inputs(i), int(test.label[i])
    length = int(test.extra["lengths"][i]) if "lengths" in test.extra else len(tokens)
    predicted = int(jnp.argmax(_output(exp, variables, batch, None)))
    embedded, output = _embedding_route(exp, variables, batch, length)
    f = lambda e, c=predicted: output(e, c)
    ig, error = integrated_gradients(f, embedded, jnp.zeros_like(embedded), steps)
    scores = np.asarray(ig.sum(-1))[:length]
    limit = np.abs(scores).max() or 1.0
    spans = []
    for token, score in zip(tokens[:length], scores):
      alpha = abs(score) / limit
      color = f"rgba(220,40,40,{alpha:.2f})" if score > 0 else f"rgba(40,90,220,{alpha:.2f})"
      word = vocab[int(token)] if vocab else str(int(token))
      spans.append(f'<span style="background:{color}" title="{score:+.4f}">'
                   f"{html.escape(word)}</span>")
    parts.append(f"<p><b>#{i}</b> true: {html.escape(classes[label])}, predicted: "
                 f"{html.escape(classes[predicted])}<br>{' '.join(spans)}</p>")
    records.append({"example": i, "label": classes[label], "predicted": classes[predicted],
                    "completeness_error": float(error)})
  (out / "tokens.html").write_text(
      "<!doctype html><meta charset='utf-8'><title>jaxdl explain</title>"
      "<body style='font-family:sans-serif;max-width:60em'><h1>Integrated gradients per token</h1>"
      "<p>Evidence for the predicted class: red for, blue against; hover for the value. "
      "Baseline: all-zero embeddings.</p>" + "\n".join(parts) + "</body>")
  return records


def _explain_sequences(exp, state, out: pathlib.Path, n: int, steps: int) -> list[dict]:
  test = exp.datasets.test
  variables = state.variables()
  regression = exp.datasets.spec.task == "regression"
  fig, axes = plt.subplots(min(n, len(test)), 1, figsize=(8, 1.6 * min(n, len(test))),
                           squeeze=False)
  records = []
  for row, i in zip(axes[:, 0], range(min(n, len(test)))):
    x = jnp.asarray(test.model_inputs(i))
    target = None if regression else int(test.label[i])
    batch = _example(test, i)
    f = lambda x, t=target, b=batch: _output(exp, variables, {**b, "inputs": x[None]}, t)
    ig, error = integrated_gradients(f, x, jnp.zeros_like(x), steps)
    per_step = np.asarray(ig).sum(-1)
    row.bar(np.arange(1, len(per_step) + 1), per_step, color=np.where(per_step > 0, "C3", "C0"))
    row.set_ylabel(f"#{i}", fontsize=8)
    records.append({"example": i, "completeness_error": float(error)})
  axes[-1, 0].set_xlabel("time step")
  fig.suptitle("integrated gradients per time step (summed over features)", fontsize=9)
  fig.tight_layout()
  fig.savefig(out / "steps.png", dpi=110)
  plt.close(fig)
  return records


def _gate_figure(exp, state, out: pathlib.Path, n: int) -> bool:
  cell = exp.part.lstm_cell(state.params) if exp.part.lstm_cell else None
  if cell is None:
    return False
  test = exp.datasets.test
  count = min(n, 3, len(test))
  fig, axes = plt.subplots(count, 2, figsize=(11, 2.8 * count), squeeze=False)
  for k in range(count):
    if TOKENS.fits(exp.datasets.spec):
      length = (int(test.extra["lengths"][k]) if "lengths" in test.extra
                else test.model_inputs(k).shape[0])
      embedded, _ = _embedding_route(exp, state.variables(), _example(test, k), length)
      x = embedded[:length]
    else:
      x = jnp.asarray(test.model_inputs(k))
    trace = lstm_gate_trace(cell, x)
    t = np.arange(1, len(x) + 1)
    for name, color in (("input_gate", "C0"), ("forget_gate", "C1"), ("output_gate", "C2")):
      axes[k, 0].plot(t, trace[name].mean(-1), color=color, label=name.replace("_", " "))
    axes[k, 0].set_ylim(0, 1)
    axes[k, 0].set_ylabel(f"#{k}: mean gate", fontsize=8)
    limit = float(np.abs(trace["cell_state"]).max()) or 1.0
    image = axes[k, 1].imshow(trace["cell_state"].T, aspect="auto", cmap="bwr", vmin=-limit,
                              vmax=limit,
                              extent=(0.5, len(x) + 0.5, trace["cell_state"].shape[1], 0))
    fig.colorbar(image, ax=axes[k, 1], fraction=0.03)
    axes[k, 1].set_ylabel("cell state unit", fontsize=8)
  axes[0, 0].legend(fontsize=7)
  axes[0, 1].set_title("cell state C_t (first LSTM layer)", fontsize=9)
  axes[-1, 0].set_xlabel("time step")
  axes[-1, 1].set_xlabel("time step")
  fig.tight_layout()
  fig.savefig(out / "lstm_gates.png", dpi=110)
  plt.close(fig)
  return True


def _check_inputs_before_loading(workdir: pathlib.Path) -> None:
  """Refuses inputs explain cannot attribute from the run's data_spec.json alone, before the
  data and the checkpoint are loaded (which took 18 s for a text run)."""
  path = workdir / "data_spec.json"
  if not path.exists():
    return  # load_run names what is missing.
  saved = read_json(path)
  spec = types.SimpleNamespace(input_shape=tuple(saved["input_shape"]),
                               input_dtype=saved["input_dtype"])
  if not any(kind.fits(spec) for kind in (IMAGES, TOKENS, SEQUENCES)):
    raise JaxdlError(f"jaxdl explain attributes images, token ids and float sequences; "
                     f"{saved.get('name', workdir)} gives {spec.input_dtype} inputs of shape "
                     f"{list(spec.input_shape)}")


def explain(workdir: str | pathlib.Path, examples: int = 4, steps: int = 64, *,
            model: Any = None) -> dict[str, Any]:
  """Explains the run in ``workdir``; returns (and writes) the summary."""
  if examples < 1:
    raise JaxdlError(f"--examples must be at least 1, got {examples}")
  if steps < 1:
    raise JaxdlError(f"--steps (integrated-gradient path points) must be at least 1, got {steps}")
  workdir = pathlib.Path(workdir)
  _check_inputs_before_loading(workdir)
  with handed_to_run(workdir, model):
    exp, state, _ = load_run(workdir)
  out = workdir / "explain"
  out.mkdir(exist_ok=True)
  spec = exp.datasets.spec
  if IMAGES.fits(spec):
    records = _explain_images(exp, state, out, examples, steps)
  elif TOKENS.fits(spec):
    records = _explain_text(exp, state, workdir, out, examples, steps)
  elif SEQUENCES.fits(spec):
    records = _explain_sequences(exp, state, out, examples, steps)
  else:
    raise JaxdlError(f"jaxdl explain attributes images, token ids and float sequences; "
                     f"{spec.name} gives {spec.input_dtype} inputs of shape {spec.input_shape}")
  gates = _gate_figure(exp, state, out, examples)
  errors = [abs(r["completeness_error"]) for r in records]
  summary = {"model": exp.config.model.name, "data": spec.name, "method": "integrated gradients "
             f"(midpoint rule, {steps} steps, zero baseline) and vanilla gradients",
             "max_abs_completeness_error": max(errors) if errors else None,
             "examples": records, "lstm_gates": gates}
  if not gates:
    summary["lstm_gates_note"] = (f"model {exp.config.model.name} has no LSTM gates to trace "
                                  "(gate traces come from the built-in recurrent models' LSTM "
                                  "layers)")
  (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
  summary["files"] = sorted(p.name for p in out.iterdir())
  return summary
