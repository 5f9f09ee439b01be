"""Numbers the README quotes from the studies come from their generated sources.

The README once said 0.7874 and 0.9406 for the privacy study while docs/results.md (the
study's own output) said 0.7892 and 0.9369. Every four-decimal number the README quotes must
appear in a generated document (docs/results.md, docs/kim2014.md, docs/benchmarks.md), except
the default run's own, which tests/test_train.py checks by training it.
"""

import re

import numpy as np
import pytest

from conftest import EXPERIMENTS, ROOT

GENERATED = ("docs/results.md", "docs/kim2014.md", "docs/benchmarks.md")
# Quoted from a run a test trains (tests/test_train.py, the default experiment).
CHECKED_BY_TRAINING = re.compile(r"\(([01]\.\d{4}) here, seed 0")
NUMBER = re.compile(r"(?<![\d.])[01]\.\d{4}(?!\d)")


# The pages written by hand that quote study numbers: the README and the docs site's own.
QUOTING = ("README.md", "docs/index.md", "docs/reproductions.md", *(
    str(p.relative_to(ROOT)) for p in sorted((ROOT / "docs" / "guides").glob("*.md"))
    if p.name != "testing.md"))  # The testing guide quotes mutation scores, not studies.


@pytest.mark.parametrize("page", QUOTING)
def test_every_study_number_a_page_quotes_is_in_its_generated_source(page):
  text = (ROOT / page).read_text()
  sources = "".join((ROOT / f).read_text() for f in GENERATED if (ROOT / f).exists())
  quoted = set(NUMBER.findall(CHECKED_BY_TRAINING.sub("", text)))
  if page == "README.md":
    assert quoted, "the README quotes no study number: is this test still reading it?"
  unsourced = sorted(q for q in quoted if q not in set(NUMBER.findall(sources)))
  assert not unsourced, f"{page} quotes numbers found in no generated document: {unsourced}"


@pytest.mark.slow
def test_the_csv_experiments_docstring_quotes_its_own_sweep(tmp_path):
  """experiments/csv_tumours.py quotes the mean ± std of its 3-seed sweep: regenerated here,
  each mean within one of the 114 test tumours (another CPU's rounding may flip one)."""
  from jaxdl import cli
  from jaxdl.sweeps.report import load_rows

  doc = (EXPERIMENTS / "csv_tumours.py").read_text()
  quoted = dict(re.findall(r"(test accuracy|macro-F1|MCC) ([01]\.\d{4}) ± ", doc))
  assert set(quoted) == {"test accuracy", "macro-F1", "MCC"}
  assert cli.main(["sweep", str(EXPERIMENTS / "csv_tumours.py"), "--workdir", str(tmp_path),
                   "--quiet", "--sweep", "seed=0:3", "--mode", "sequential"]) == 0
  rows, _, _ = load_rows(tmp_path)
  for label, key in (("test accuracy", "test_accuracy"), ("macro-F1", "test_macro_f1"),
                     ("MCC", "test_mcc")):
    mean = float(np.mean([r[key] for r in rows]))
    slack = (3 if key == "test_mcc" else 1) / rows[0]["num_test"]  # MCC moves more per flip.
    assert abs(float(quoted[label]) - mean) <= slack + 1e-9, (label, quoted[label], mean)
