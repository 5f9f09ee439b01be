"""``jaxdl reproduce --quick``: the document's structure, figures, and computed verdicts."""

import csv
import re

import pytest

from jaxdl import cli


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
  folder = tmp_path_factory.mktemp("reproduce")
  assert cli.main(["reproduce", "--quick", "--workdir", str(folder)]) == 0
  return folder, (folder / "results.md").read_text()


@pytest.mark.slow
def test_document_has_every_study_and_its_provenance(quick):
  _, text = quick
  for heading in ("# The seed's claims, tested with data", "## Study 1: CNN depth",
                  "## Study 2: vanishing gradients", "### The gradient at each time step",
                  "### Exploding gradients", "## Study 3: language",
                  "## Study 4: the price of privacy"):
    assert heading in text, heading
  assert re.search(r"at commit `[0-9a-f]{7,}|at commit `unknown", text)
  assert re.search(r"in \d+\.\d minutes", text)
  assert "Quick scale" in text


@pytest.mark.slow
def test_figures_are_real_pngs(quick):
  folder, text = quick
  figures = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
  assert len(figures) == 6
  for name in figures:
    data = (folder / name).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


@pytest.mark.slow
def test_verdicts_are_computed_from_the_runs(quick):
  folder, text = quick
  # Each verdict says holds / does not hold / not shown, from the data, never assumed.
  verdicts = re.findall(r"\*\*Verdict[^*]*:\*\* (.*)", text)
  assert len(verdicts) >= 2
  for verdict in verdicts:
    assert re.search(r"\*\*(holds|does not hold|not shown)\*\*|does not separate", verdict)
  # The adding table's numbers are the sweeps' own results.
  with (folder / "adding_lstm_T10" / "results.csv").open() as f:
    mses = [float(r["test_mse"]) for r in csv.DictReader(f)]
  mean = sum(mses) / len(mses)
  assert f"{mean:.4f}" in text


def test_study_configs_carry_the_named_model_s_own_fields():
  """A study config is complete like a loaded experiment: the default model's fields too."""
  from jaxdl.studies.common import config

  assert config(data__name="digits").model.to_dict() == {"name": "seed_cnn",
                                                          "conv_kernel": "auto"}
  assert config(model__name="deep_cnn").model.conv_kernel == "auto"
  recurrent = config(model__name="seq_rnn").model
  assert "conv_kernel" not in recurrent and recurrent.lstm_kernel == "auto"
