"""``jaxdl explain``: attributions and LSTM gate traces for the trained model of a run.

Writes into ``RUN/explain/``:
  images: ``class_<c>.png`` per class (image, |saliency|, integrated gradients);
  text: ``tokens.html`` (tokens shaded by their integrated-gradients attribution);
  float sequences: ``steps.png`` (attribution per time step);
  LSTMs: ``lstm_gates.png`` (input/forget/output gates and cell state over time);
  and ``summary.json`` with each example's completeness error.
"""

import html
import json
import pathlib
from typing import Any

import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxdl.errors import JaxdlError  # noqa: E402
from jaxdl.explain.attributions import integrated_gradients, saliency  # noqa: E402
from jaxdl.explain.gates import lstm_gate_trace  # noqa: E402
from jaxdl.train import load_run  # noqa: E402
from jaxdl.train.run_folder import read_json  # noqa: E402


def _pick(labels: np.ndarray, per_class: int, classes: int) -> dict[int, np.ndarray]:
  return {c: np.flatnonzero(labels == c)[:per_class] for c in range(classes)
          if np.any(labels == c)}


def _explain_images(exp, state, out: pathlib.Path, n: int, steps: int) -> list[dict]:
  test = exp.datasets.test
  variables = state.variables()
  records = []
  for c, index in _pick(test.label, n, exp.datasets.spec.num_classes).items():
    f = lambda x, c=c: exp.model.apply(variables, x[None], train=False)[0, c]
    fig, axes = plt.subplots(3, len(index), figsize=(1.8 * len(index), 5.6), squeeze=False)
    for j, i in enumerate(index):
      x = jnp.asarray(test.inputs[i])
      sal = np.abs(np.asarray(saliency(f, x))).max(-1)
      ig, error = integrated_gradients(f, x, jnp.zeros_like(x), steps)
      ig = np.asarray(ig).sum(-1)
      gap = float(f(x) - f(jnp.zeros_like(x)))
      records.append({"example": int(i), "class": c, "completeness_error": float(error),
                      "f(x)-f(baseline)": gap})
      image = np.asarray(test.inputs[i])[..., 0] if test.inputs.shape[-1] == 1 else \
          np.asarray(test.inputs[i])
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


def _explain_text(exp, state, workdir: pathlib.Path, out: pathlib.Path, n: int,
                  steps: int) -> list[dict]:
  vocab = read_json(workdir / "vocab.json")
  test = exp.datasets.test
  variables = state.variables()
  table = variables["params"]["Embed_0"]["embedding"]
  classes = exp.datasets.spec.class_names or tuple(map(str, range(exp.datasets.spec.num_classes)))
  parts, records = [], []
  for i in range(min(n, len(test))):
    tokens, length, label = test.inputs[i], int(test.extra["lengths"][i]), int(test.label[i])
    ids = jnp.asarray(tokens)[None]
    lengths = jnp.asarray([length])
    logits = exp.model.apply(variables, ids, lengths, train=False)[0]
    predicted = int(jnp.argmax(logits))
    f = lambda e: exp.model.apply(variables, ids, lengths, train=False, embedded=e[None])[0,
                                                                                         predicted]
    embedded = table[tokens]
    ig, error = integrated_gradients(f, embedded, jnp.zeros_like(embedded), steps)
    scores = np.asarray(ig.sum(-1))[:length]
    limit = np.abs(scores).max() or 1.0
    spans = []
    for token, score in zip(tokens[:length], scores):
      alpha = abs(score) / limit
      color = f"rgba(220,40,40,{alpha:.2f})" if score > 0 else f"rgba(40,90,220,{alpha:.2f})"
      spans.append(f'<span style="background:{color}" title="{score:+.4f}">'
                   f"{html.escape(vocab[int(token)])}</span>")
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
    x = jnp.asarray(test.inputs[i])
    target = 0 if regression else int(test.label[i])
    f = lambda x, t=target: (exp.model.apply(variables, x[None], train=False)[0] if regression
                             else exp.model.apply(variables, x[None], train=False)[0, t])
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


def _first_lstm(params: dict) -> dict | None:
  layer = params.get("recurrent", {}).get("layer_0")
  cell = layer.get("cell") if layer else None
  return cell if cell and cell["recurrent_kernel"].shape[1] == 4 * cell[
      "recurrent_kernel"].shape[0] else None


def _gate_figure(exp, state, out: pathlib.Path, n: int) -> bool:
  params = state.params
  cell = _first_lstm(params)
  if cell is None:
    return False
  test = exp.datasets.test
  count = min(n, 3, len(test))
  fig, axes = plt.subplots(count, 2, figsize=(11, 2.8 * count), squeeze=False)
  for k in range(count):
    if "Embed_0" in params:
      length = int(test.extra["lengths"][k])
      x = params["Embed_0"]["embedding"][test.inputs[k][:length]]
    else:
      x = jnp.asarray(test.inputs[k])
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


def explain(workdir: str | pathlib.Path, examples: int = 4, steps: int = 64) -> dict[str, Any]:
  """Explains the run in ``workdir``; returns (and writes) the summary."""
  if examples < 1:
    raise JaxdlError(f"--examples must be at least 1, got {examples}")
  if steps < 1:
    raise JaxdlError(f"--steps (integrated-gradient path points) must be at least 1, got {steps}")
  workdir = pathlib.Path(workdir)
  exp, state, _ = load_run(workdir)
  out = workdir / "explain"
  out.mkdir(exist_ok=True)
  spec = exp.datasets.spec
  if exp.config.model.name in ("seed_cnn", "deep_cnn"):
    records = _explain_images(exp, state, out, examples, steps)
  elif exp.config.model.name == "text_rnn":
    records = _explain_text(exp, state, workdir, out, examples, steps)
  elif exp.config.model.name == "seq_rnn":
    records = _explain_sequences(exp, state, out, examples, steps)
  else:
    raise JaxdlError(f"jaxdl explain does not know model {exp.config.model.name!r}")
  gates = _gate_figure(exp, state, out, examples)
  errors = [abs(r["completeness_error"]) for r in records]
  summary = {"model": exp.config.model.name, "data": spec.name, "method": "integrated gradients "
             f"(midpoint rule, {steps} steps, zero baseline) and vanilla gradients",
             "max_abs_completeness_error": max(errors) if errors else None,
             "examples": records, "lstm_gates": gates}
  (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
  summary["files"] = sorted(p.name for p in out.iterdir())
  return summary
