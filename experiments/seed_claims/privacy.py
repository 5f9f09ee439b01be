"""Study 4: what differential privacy costs in accuracy (the seed's data-privacy challenge)."""

import dataclasses
import math
import pathlib

import matplotlib.pyplot as plt

from jaxdl.studies.common import StudyRows, config, save_figure, seeds_sweep


@dataclasses.dataclass(frozen=True)
class PrivacyScale:
  seeds: int
  epsilons: tuple[float, ...]  # math.inf: no privacy.
  epochs: dict[str, int]


def run(workdir: pathlib.Path, scale: PrivacyScale, data_dir: pathlib.Path | None, quick: bool,
        log=print) -> str:
  lines = ["## Study 4: the price of privacy (DP-SGD)", "",
           "The seed names data privacy as a challenge. The seed CNN trained with DP-SGD (Abadi "
           "et al. 2016): per-example gradients clipped to norm 1, Gaussian noise calibrated so "
           f"that training ends at ε in {{{', '.join(_eps(e) for e in scale.epsilons)}}} with "
           "δ = 1/(10 N) (RDP accountant of dp-accounting, for the Poisson sampling the runs use: "
           "each step includes each example with probability 64 / N), plain SGD at 0.1 (with "
           "momentum 0.9 the ε = 1 runs diverged), batch 64, no augmentation; "
           f"ε = ∞ is the same recipe without privacy. {scale.seeds} seeds each.", ""]
  sets = {"digits": dict(data__name="digits", data__image_size=28)}
  mnist = data_dir / "mnist" if data_dir else None
  if not quick and mnist and mnist.is_dir():
    sets["mnist"] = dict(data__name=f"idx:{mnist}")
  fig, ax = plt.subplots(figsize=(6.5, 4.5))
  for i, (name, data) in enumerate(sets.items()):
    lines += _dataset_section(workdir, scale, name, data, ax, f"C{i}", log)
  ax.set_xscale("log")
  ax.set_xlabel("privacy budget ε at δ = 1/(10 N) (log scale; smaller is more private)")
  ax.set_ylabel("test accuracy (mean ± std over seeds)")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  lines += [f"![privacy]({save_figure(fig, workdir / 'privacy_accuracy_vs_epsilon.png')})", ""]
  return "\n".join(lines)


def _dataset_section(workdir: pathlib.Path, scale: PrivacyScale, name: str, data: dict, ax,
                     color: str, log) -> list[str]:
  """Trains one dataset at every ε, plots its curve on ``ax``; returns its table and reading."""
  results = StudyRows()
  for eps in scale.epsilons:
    settings = dict(data, num_epochs=scale.epochs[name], batch_size=64, optim__name="sgd",
                    optim__learning_rate=0.1, optim__momentum=0.0, optim__schedule="constant",
                    data__augment_shift=0)
    if math.isfinite(eps):
      settings.update(privacy__enabled=True, privacy__clip_norm=1.0,
                      privacy__target_epsilon=float(eps))
    results.add(seeds_sweep(config(**settings), workdir / f"privacy_{name}_eps{_eps(eps)}",
                            scale.seeds, log=log), epsilon=_eps(eps))
  groups, table = results.table(["epsilon"], ["val_accuracy", "test_accuracy"])
  finite = [g for g in groups if g.values["epsilon"] != "∞"]
  ax.errorbar([float(g.values["epsilon"]) for g in finite],
              [g.metrics["test_accuracy"].mean for g in finite],
              yerr=[g.metrics["test_accuracy"].error_bar for g in finite], marker="o", capsize=3,
              color=color, label=f"{name}, DP-SGD")
  public = next(g for g in groups if g.values["epsilon"] == "∞").metrics["test_accuracy"]
  ax.axhline(public.mean, color=color, ls="--", label=f"{name}, no privacy (ε = ∞)")
  best = max(finite, key=lambda g: g.metrics["val_accuracy"].mean)  # Chosen on validation.
  return [f"### {name}", "", table, "",
          f"**On {name}:** without privacy {public.mean:.4f}; the most private setting "
          f"(ε = {finite[0].values['epsilon']}) reaches "
          f"{finite[0].metrics['test_accuracy'].mean:.4f} and the least private (ε = "
          f"{finite[-1].values['epsilon']}) {finite[-1].metrics['test_accuracy'].mean:.4f}; "
          f"privacy costs {100 * (public.mean - best.metrics['test_accuracy'].mean):.1f} "
          "points at the ε that validation accuracy favours.", ""]


def _eps(eps: float) -> str:
  return "∞" if math.isinf(eps) else f"{eps:g}"
