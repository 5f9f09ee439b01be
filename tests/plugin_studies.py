"""A user's study, defined outside the package (found by import path in test_cli.py)."""

import jaxdl
from jaxdl.studies import Study


def _tiny_study_run(workdir, options, log):
  """Trains one seed-CNN epoch on digits per seed, and reports each test accuracy."""
  lines = []
  for seed in range(options.seeds):
    results = jaxdl.train("experiments/seed_cnn_digits.py", workdir / f"s{seed}",
                          ["num_epochs=1", f"seed={seed}"])
    lines.append(f"- seed {seed}: test accuracy {results['test_accuracy']:.4f}")
  return "Data: scikit-learn's digits.", "\n".join(["## One epoch", "", *lines, ""])


TINY_STUDY = Study("tiny", "A user's study", "tiny.md", _tiny_study_run, ("seeds",),
                   "one epoch per seed")
