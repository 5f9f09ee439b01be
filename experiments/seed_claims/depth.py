"""Study 1: are deeper CNNs more accurate, and at what cost? (seed sections 1.1.2 and 3.2)"""

import dataclasses
import pathlib

import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

from jaxdl.studies.common import StudyRows, config, save_figure, seeds_sweep

# Ranked by validation accuracy; the test accuracy is the selected checkpoints'.
METRICS = ["val_accuracy", "test_accuracy", "num_params", "flops_per_example",
           "train_s_per_epoch"]


@dataclasses.dataclass(frozen=True)
class DepthScale:
  seeds: int
  blocks_per_stage: tuple[int, ...]  # Two stages: conv layers = 2 * blocks.
  epochs: dict[str, int]  # Per dataset.


def _datasets(data_dir: pathlib.Path | None, quick: bool) -> dict[str, dict]:
  sets = {"digits": dict(data__name="digits", data__image_size=28)}
  mnist = data_dir / "mnist" if data_dir else None
  if not quick and mnist and mnist.is_dir():
    sets["mnist"] = dict(data__name=f"idx:{mnist}")
  return sets


def run(workdir: pathlib.Path, scale: DepthScale, data_dir: pathlib.Path | None, quick: bool,
        log=print) -> str:
  """Trains SeedCNN and DeepCNNs of growing depth; returns the Markdown section."""
  lines = ["## Study 1: CNN depth vs accuracy vs cost", "",
           "Claim (seed 1.1.2, 3.2): deeper CNNs reach higher accuracy at a higher compute cost.",
           "", f"SeedCNN (the seed's Keras model, 3 conv layers) and DeepCNN with two stages "
           f"(widths 16, 32) of {', '.join(str(b) for b in scale.blocks_per_stage)} blocks each "
           f"({', '.join(str(2 * b) for b in scale.blocks_per_stage)} conv layers), batch norm "
           f"and residual connections; Adam 1e-3 with cosine decay, batch 32, random shifts of "
           f"2 pixels; {scale.seeds} seeds each. Mean ± std over seeds; FLOPs per example from "
           "XLA's cost analysis of the forward pass; seconds per training epoch on this machine.",
           ""]
  datasets = _datasets(data_dir, quick)
  fig, axes_ = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4.5), squeeze=False)
  for ax, (name, data) in zip(axes_[0], datasets.items()):
    common = dict(data, num_epochs=scale.epochs[name], data__augment_shift=2,
                  optim__schedule="cosine")
    results = StudyRows().add(seeds_sweep(config(**common), workdir / f"depth_{name}_seed_cnn",
                                          scale.seeds, log=log), model="SeedCNN", conv_layers=3)
    for blocks in scale.blocks_per_stage:
      results.add(seeds_sweep(config(**common, model__name="deep_cnn", model__widths=(16, 32),
                                     model__batch_norm=True, model__residual=True,
                                     model__blocks_per_stage=blocks),
                              workdir / f"depth_{name}_deep_cnn_{blocks}", scale.seeds, log=log),
                  model="DeepCNN", conv_layers=2 * blocks)
    groups, table = results.table(["model", "conv_layers"], METRICS)
    lines += [f"### {name}", "", *_data_note(results.rows[0], data_dir), table, ""]
    acc = np.array([g.metrics["test_accuracy"].mean for g in groups])
    std = np.array([g.metrics["test_accuracy"].error_bar for g in groups])
    flops = np.array([g.metrics["flops_per_example"].mean for g in groups])
    depth = np.array([g.values["conv_layers"] for g in groups])
    ax.errorbar(flops[1:], acc[1:], yerr=std[1:], marker="o", capsize=3, label="DeepCNN")
    for f, a, d in zip(flops[1:], acc[1:], depth[1:]):
      ax.annotate(f"{d} layers", (f, a), textcoords="offset points", xytext=(4, -12), fontsize=8)
    ax.errorbar(flops[:1], acc[:1], yerr=std[:1], marker="s", capsize=3, color="C3",
                label="SeedCNN (3 layers)")
    ax.set_xscale("log")
    ax.set_xlabel("forward FLOPs per example (log scale)")
    ax.set_ylabel("test accuracy (mean ± std over seeds)")
    ax.set_title(name)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    val = np.array([g.metrics["val_accuracy"].mean for g in groups])
    lines += [_verdict(name, depth[1:], acc[1:], std[1:], flops[1:], acc[0], std[0], val[1:]),
              ""]
  figure = save_figure(fig, workdir / "depth_accuracy_vs_flops.png")
  lines += [f"![accuracy vs FLOPs]({figure})", ""]
  return "\n".join(lines)


def _data_note(row: dict, data_dir: pathlib.Path | None) -> list[str]:
  """The runs' data notes, with this machine's data folder written as ../shared/data."""
  notes = "; ".join(row.get("data_notes") or [])
  if data_dir:
    notes = notes.replace(str(data_dir), "../shared/data")
  return [f"Data: {notes}.", ""] if notes else []


def _verdict(name: str, depth, acc, std, flops, seed_acc: float, seed_std: float, val) -> str:
  """The claim's two halves, decided by the numbers (the best depth chosen on validation)."""
  rho = stats.spearmanr(depth, acc).statistic if len(depth) > 2 else np.sign(acc[-1] - acc[0])
  best = int(np.argmax(val))
  cost_rises = bool(np.all(np.diff(flops) > 0))
  gain = acc[-1] - acc[0]
  separated = abs(gain) > (std[-1] + std[0])
  if rho > 0 and gain > 0 and separated:
    accuracy = (f"accuracy rises with depth ({depth[0]} layers {acc[0]:.4f} → {depth[-1]} "
                f"layers {acc[-1]:.4f}, Spearman ρ = {rho:.2f}): the claim **holds**")
  elif gain > 0:
    accuracy = (f"accuracy rises only within the seed-to-seed spread ({depth[0]} layers "
                f"{acc[0]:.4f} → {depth[-1]} layers {acc[-1]:.4f}, ρ = {rho:.2f}): the claim is "
                "**not shown** at this data size")
  else:
    accuracy = (f"accuracy does not rise with depth ({depth[0]} layers {acc[0]:.4f} → "
                f"{depth[-1]} layers {acc[-1]:.4f}, ρ = {rho:.2f}; best at {depth[best]} layers): "
                "the claim **does not hold** here")
  cost = ("compute rises with every step in depth "
          f"({flops[0] / 1e6:.1f} → {flops[-1] / 1e6:.1f} MFLOP per example)" if cost_rises
          else "compute does not rise monotonically with depth")
  plateau = (f" Validation accuracy peaks at {depth[best]} layers (test {acc[best]:.4f}); deeper "
             "adds cost without accuracy." if best < len(depth) - 1 else "")
  margin = acc[-1] - seed_acc
  versus = ("beyond" if abs(margin) > std[-1] + seed_std else "within")
  return (f"**Verdict on {name}:** {accuracy}; {cost}.{plateau} Against the seed's own 3-layer "
          f"SeedCNN ({seed_acc:.4f}), the deepest DeepCNN is {abs(margin) * 100:.2f} points "
          f"{'above' if margin > 0 else 'below'} it, {versus} the seed-to-seed spread.")
