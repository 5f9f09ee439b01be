"""Data parallel over several (fake CPU) devices equals one device with the same global batch."""

import json
import os
import socket
import subprocess
import sys

import chex
import numpy as np
import pytest

from conftest import ROOT, run_on_fake_devices
from jaxdl.training import load_run

_TRAIN = """
import jax, json, sys
sys.path.insert(0, {tests!r})
from conftest import experiment
from jaxdl.training import train_and_evaluate
assert jax.device_count() == {devices}, jax.devices()
config = experiment({name!r}, *{overrides!r})
results = train_and_evaluate(config, {workdir!r}, quiet=True)
spec = None
if config.parallel.model_axis > 1:
  from jaxdl.training.parallel import DataParallel
  spec = str(DataParallel.over_all_devices(model_axis=config.parallel.model_axis)
             .leaf_sharding((576, 64)).spec)
print(json.dumps({{"devices": jax.device_count(), "test_loss": results["test_loss"],
                  "kernel_spec": spec}}))
"""


def _train_on(devices: int, workdir, name="seed_cnn_digits", overrides=()):
  code = _TRAIN.format(tests=str(ROOT / "tests"), devices=devices, name=name,
                       overrides=tuple(overrides), workdir=str(workdir))
  return run_on_fake_devices(code, devices)


@pytest.mark.parametrize("name, overrides", [
    pytest.param("seed_cnn_digits", ("num_epochs=1", "batch_size=64", "data.augment_shift=0"),
                 marks=pytest.mark.slow),
    # SGD: linear in the gradient, so the split matmuls' rounding stays at float32 level
    # (Adam's normalised steps turn it into ~1e-3 where a gradient is ~0).
    pytest.param("seed_cnn_digits", ("num_epochs=1", "batch_size=64", "data.augment_shift=0",
                                     "optim.name=sgd", "optim.learning_rate=0.05",
                                     "parallel.model_axis=2"), marks=pytest.mark.slow),
    pytest.param("adding_lstm", ("num_epochs=1", "data.num_train=512", "data.num_test=100",
                                 "data.seq_len=10", "model.hidden_sizes=(8,)"),
                 marks=pytest.mark.slow),
    # A researcher's own model (batch norm and dropout: statistics and masks are global).
    pytest.param("seed_cnn_digits", ("num_epochs=1", "batch_size=64", "data.augment_shift=0",
                                     "model.name=plugin_models:TinyCNN", "optim.name=sgd",
                                     "optim.learning_rate=0.05", "parallel.model_axis=2"),
                 marks=pytest.mark.slow),
])
def test_four_devices_equal_one_device(tmp_path, name, overrides):
  one = _train_on(1, tmp_path / "one", name,
                  [o for o in overrides if not o.startswith("parallel.")])
  four = _train_on(4, tmp_path / "four", name, overrides)
  assert one.returncode == 0, one.stderr[-2000:]
  assert four.returncode == 0, four.stderr[-2000:]
  report = json.loads(four.stdout.splitlines()[-1])
  assert report["devices"] == 4
  if "parallel.model_axis=2" in overrides:  # Parameters split over the model axis.
    assert report["kernel_spec"] in ("P(None, 'model')", "PartitionSpec(None, 'model')")
  _, state_one, _ = load_run(tmp_path / "one")
  _, state_four, _ = load_run(tmp_path / "four")
  # The all-reduce (and, with a model axis, the split matmuls) add in another order:
  # equal to float tolerance. Split matmuls also reorder the sums behind a bias's gradient
  # (every pixel of the batch), which momentum carries: a little more absolute slack there.
  split = any(o.startswith("parallel.model_axis") for o in overrides)
  chex.assert_trees_all_close(state_one.params, state_four.params, rtol=1e-4,
                              atol=5e-5 if split else 1e-5)
  losses = [[json.loads(line)["train_loss"] for line in (tmp_path / d / "metrics.jsonl")
             .read_text().splitlines()] for d in ("one", "four")]
  np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
  assert len(json.loads((tmp_path / "four" / "provenance.json").read_text())["devices"]) == 4


@pytest.mark.slow
def test_a_batch_not_divisible_by_the_devices_is_a_clear_error(tmp_path):
  out = _train_on(4, tmp_path, overrides=("batch_size=30",))
  assert out.returncode != 0
  assert "batch_size=30 (the global batch) is not divisible by the 4 devices" in out.stderr
  odd = _train_on(4, tmp_path / "odd", overrides=("parallel.model_axis=3",))
  assert "parallel.model_axis=3 must divide the 4 devices" in odd.stderr


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_with_jax_distributed_equal_one_process(tmp_path):
  args = [sys.executable, "-m", "jaxdl.cli", "train", str(ROOT / "experiments" / "seed_cnn_digits.py"),
          "--quiet", "--config.num_epochs=1", "--config.batch_size=64",
          "--config.data.augment_shift=0"]
  coordinator = f"127.0.0.1:{_free_port()}"
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  workers = [subprocess.Popen([*args, "--workdir", str(tmp_path / "multi"), "--distributed",
                               "--coordinator", coordinator, "--num-processes", "2",
                               "--process-id", str(i)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in (1, 0)]
  outputs = [w.communicate(timeout=300) for w in workers]
  for worker, (_, err) in zip(workers, outputs):
    assert worker.returncode == 0, err[-3000:]
  # The reference: one process whose two (fake) devices split the same global batch, so
  # the gradient all-reduce adds in the same order.
  single = subprocess.run([*args, "--workdir", str(tmp_path / "single")], cwd=ROOT,
                          env={**env, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
                          capture_output=True, text=True, timeout=300)
  assert single.returncode == 0, single.stderr[-3000:]
  provenance = json.loads((tmp_path / "multi" / "provenance.json").read_text())
  assert provenance["process_count"] == 2 and len(provenance["devices"]) == 2
  _, multi_state, _ = load_run(tmp_path / "multi")
  _, single_state, _ = load_run(tmp_path / "single")
  chex.assert_trees_all_close(multi_state.params, single_state.params, rtol=1e-6, atol=1e-7)
  multi = json.loads((tmp_path / "multi" / "results.json").read_text())
  assert multi["test_loss"] == pytest.approx(
      json.loads((tmp_path / "single" / "results.json").read_text())["test_loss"], rel=1e-6)


_READS = """
import jax, json, sys
sys.path.insert(0, {tests!r})
if {distributed!r}:
  from jaxdl.training import distributed
  distributed.initialize({coordinator!r}, 2, {process_id!r})
from conftest import experiment
from jaxdl import data
from jaxdl.training import train_and_evaluate
config = experiment("seed_cnn_digits", "data.name=arrayrecord:{folder}", "data.image_size=0",
                    "data.in_memory=no", "num_epochs=1", "batch_size=64", "data.augment_shift=1",
                    "model.name=plugin_models:TinyCNN", "optim.name=sgd")
datasets = data.build(config.data)
results = train_and_evaluate(config, {workdir!r}, quiet=True, datasets=datasets)
print(json.dumps({{"train_reads": datasets.train.inputs.base.reads,
                  "test_reads": datasets.test.inputs.reads,
                  "test_loss": results["test_loss"]}}))
"""


@pytest.mark.slow
def test_two_processes_each_read_half_of_streamed_records(tmp_path):
  from sklearn.datasets import load_digits

  from jaxdl.data import arrayrecord

  digits = load_digits()
  images = (digits.images * 255 / 16).round().astype(np.uint8)[..., None]
  folder = arrayrecord.write(tmp_path / "records", {"train": (images[:1400], digits.target[:1400]),
                                                    "test": (images[1400:], digits.target[1400:])})
  coordinator = f"127.0.0.1:{_free_port()}"
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}

  def driver(workdir, distributed=False, process_id=0):
    return [sys.executable, "-c", _READS.format(
        tests=str(ROOT / "tests"), distributed=distributed, coordinator=coordinator,
        process_id=process_id, folder=folder, workdir=str(workdir))]

  workers = [subprocess.Popen(driver(tmp_path / "multi", True, i), cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in (1, 0)]
  outputs = [w.communicate(timeout=300) for w in workers]
  for worker, (_, err) in zip(workers, outputs):
    assert worker.returncode == 0, err[-3000:]
  single = subprocess.run(driver(tmp_path / "single"), cwd=ROOT, capture_output=True, text=True,
                          env={**env, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
                          timeout=300)
  assert single.returncode == 0, single.stderr[-3000:]
  parts = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
  whole = json.loads(single.stdout.strip().splitlines()[-1])
  # Setup reads: one training example shapes the model and two check a user model's contract.
  for key, setup in (("train_reads", 3), ("test_reads", 0)):
    halves = [part[key] - setup for part in parts]
    assert halves[0] == halves[1] > 0  # Each process read its half, no more.
    assert sum(halves) == whole[key] - setup
  assert parts[0]["test_loss"] == pytest.approx(whole["test_loss"], rel=1e-6)
