"""Data parallel over several (fake CPU) devices equals one device with the same global batch."""

import json
import os
import subprocess
import sys

import chex
import numpy as np
import pytest

from conftest import ROOT
from jaxdl.train import load_run

_TRAIN = """
import jax, json, sys
sys.path.insert(0, {tests!r})
from conftest import experiment
from jaxdl.train import train_and_evaluate
assert jax.device_count() == {devices}, jax.devices()
config = experiment({name!r}, *{overrides!r})
results = train_and_evaluate(config, {workdir!r}, quiet=True)
print(json.dumps({{"devices": jax.device_count(), "test_loss": results["test_loss"]}}))
"""


def _train_on(devices: int, workdir, name="seed_cnn_digits", overrides=()):
  env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
  code = _TRAIN.format(tests=str(ROOT / "tests"), devices=devices, name=name,
                       overrides=tuple(overrides), workdir=str(workdir))
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=600)
  return out


@pytest.mark.parametrize("name, overrides", [
    ("seed_cnn_digits", ("num_epochs=1", "batch_size=64", "data.augment_shift=0")),
    ("adding_lstm", ("num_epochs=1", "data.num_train=512", "data.num_test=100", "data.seq_len=10",
                     "model.hidden_sizes=(8,)")),
])
def test_four_devices_equal_one_device(tmp_path, name, overrides):
  one = _train_on(1, tmp_path / "one", name, overrides)
  four = _train_on(4, tmp_path / "four", name, overrides)
  assert one.returncode == 0, one.stderr[-2000:]
  assert four.returncode == 0, four.stderr[-2000:]
  assert json.loads(four.stdout.splitlines()[-1])["devices"] == 4
  _, state_one, _ = load_run(tmp_path / "one")
  _, state_four, _ = load_run(tmp_path / "four")
  # The all-reduce sums the gradient in another order: equal to float tolerance.
  chex.assert_trees_all_close(state_one.params, state_four.params, rtol=1e-4, atol=1e-5)
  losses = [[json.loads(line)["train_loss"] for line in (tmp_path / d / "metrics.jsonl")
             .read_text().splitlines()] for d in ("one", "four")]
  np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
  assert len(json.loads((tmp_path / "four" / "provenance.json").read_text())["devices"]) == 4


def test_a_batch_not_divisible_by_the_devices_is_a_clear_error(tmp_path):
  out = _train_on(4, tmp_path, overrides=("batch_size=30",))
  assert out.returncode != 0
  assert "batch_size=30 (the global batch) is not divisible by the 4 devices" in out.stderr
