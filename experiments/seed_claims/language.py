"""Study 3: the seed's LSTM text classifier against RNN, GRU and bidirectional LSTM."""

import dataclasses
import pathlib

import matplotlib.pyplot as plt

from jaxdl.studies.common import StudyRows, config, save_figure, seeds_sweep

KIM_2014_CNN_RAND_MR = 0.761  # Kim 2014, Table 2: CNN-rand on MR (10-fold CV).
VARIANTS = {"LSTM (seed)": dict(model__cell="lstm"), "RNN": dict(model__cell="rnn"),
            "GRU": dict(model__cell="gru"),
            "BiLSTM": dict(model__cell="lstm", model__bidirectional=True)}


@dataclasses.dataclass(frozen=True)
class LanguageScale:
  seeds: int
  variants: tuple[str, ...]
  mr_epochs: int
  mr_max_len: int
  digits_epochs: int


def run(workdir: pathlib.Path, scale: LanguageScale, data_dir: pathlib.Path | None,
        log=print) -> str:
  lines = ["## Study 3: language and sequences", "",
           "The seed's text model (Embedding(10000, 64) -> LSTM(64) -> LSTM(64) -> Dense, Adam "
           "1e-3, batch 32) against the same model with a vanilla RNN, a GRU, or bidirectional "
           f"LSTM layers; {scale.seeds} seeds each.", ""]
  panels = []
  mr = data_dir / "mr" if data_dir else None
  if mr and mr.is_dir():
    base = dict(data__name=f"textfile:{mr}", data__encoding="latin-1", data__test_fraction=0.1,
                model__name="text_rnn", num_epochs=scale.mr_epochs,
                data__max_len=scale.mr_max_len)
    panels.append(("MR (Pang & Lee 2005)", "mr", base, KIM_2014_CNN_RAND_MR))
  else:
    lines += ["MR is not present (../shared/data/mr): its part is skipped.", ""]
  panels.append(("pixel-by-pixel digits (length 64)", "seq_digits",
                 dict(data__name="seq_digits", model__name="seq_rnn", batch_size=32,
                      num_epochs=scale.digits_epochs, optim__learning_rate=3e-3,
                      optim__schedule="cosine", optim__grad_clip_norm=1.0), None))
  fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
  for ax, (title, key, base, anchor) in zip(axes[0], panels):
    results = StudyRows()
    for variant in scale.variants:
      results.add(seeds_sweep(config(**base, **VARIANTS[variant]),
                              workdir / f"language_{key}_{variant.split()[0].lower()}",
                              scale.seeds, log=log), model=variant)
    groups, table = results.table(["model"], ["val_accuracy", "test_accuracy"])
    lines += [f"### {title}", "", table, ""]
    names = [g.values["model"] for g in groups]
    means = [g.metrics["test_accuracy"].mean for g in groups]
    stds = [g.metrics["test_accuracy"].error_bar for g in groups]
    ax.bar(names, means, yerr=stds, capsize=4, color=[f"C{i}" for i in range(len(names))])
    if anchor:
      ax.axhline(anchor, color="gray", ls="--", label=f"Kim 2014 CNN-rand: {anchor:.3f}")
      ax.legend(fontsize=8)
    ax.set_ylim(min(means) - 0.1, min(1.0, max(means) + 0.05))
    ax.set_ylabel("test accuracy (mean ± std over seeds)")
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    accuracy = dict(zip(names, means))
    if "RNN" in accuracy and "LSTM (seed)" in accuracy:
      diff = accuracy["LSTM (seed)"] - accuracy["RNN"]
      lines += [f"**On {title}:** the seed's LSTM is {abs(diff) * 100:.1f} points "
                f"{'above' if diff > 0 else 'below'} the vanilla RNN"
                + (f"; the published anchor (Kim 2014, CNN-rand, 10-fold CV) is {anchor:.3f}, "
                   f"the seed's LSTM here {accuracy['LSTM (seed)']:.3f} on one held-out 10% split"
                   if anchor else "") + ".", ""]
  lines += [f"![language]({save_figure(fig, workdir / 'language_accuracy.png')})", ""]
  return "\n".join(lines)
