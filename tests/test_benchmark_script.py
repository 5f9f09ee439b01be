"""scripts/benchmark.py: its table arithmetic and the jaxdl runner (no timings are checked)."""

import importlib.util
import json
import pathlib
import sys

import numpy as np
import pytest

SCRIPTS = pathlib.Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture(scope="module")
def benchmark():
  sys.path.insert(0, str(SCRIPTS))
  spec = importlib.util.spec_from_file_location("benchmark", SCRIPTS / "benchmark.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  yield module
  sys.path.remove(str(SCRIPTS))


def _result(impl, workload, rate, flops=None):
  return {"impl": impl, "workload": workload, "examples_per_s": rate, "min": rate * 0.9,
          "max": rate * 1.1, "compile_s": 1.0, "info": {"flops_per_example": flops}}


def test_markdown_gives_jaxdl_over_each_peer_and_the_sweep_ratio(benchmark):
  results = [_result("jaxdl", "cnn", 6000.0, 17e6), _result("torch-eager", "cnn", 3000.0),
             _result("jaxdl", "lstm", 2000.0, 40e6), _result("jaxdl", "lstm-sweep8", 7000.0, 40e6),
             _result("keras-tfstep", "lstm", 4000.0)]
  meta = {"machine": {"cpu": "test cpu", "cores": 2, "date": "2026-11-26"}, "threads": 2,
          "windows": 5, "window_s": 1.0, "peak": {"flops_per_s": 400e9, "machine": "cpu|cpu"},
          "allocator": "same"}
  table = benchmark.markdown(results, meta)
  assert "| torch-eager | 2.00x |  |  |" in table
  assert "| keras-tfstep |  | 0.50x |  |" in table
  assert "3.50x" in table  # 7,000 all-member examples/s over 2,000 for one member.
  assert "26% of peak" in table  # 6,000 * 17e6 / 400e9 = 0.255.


def test_the_tuned_settings_get_their_own_ratios(benchmark):
  results = [_result("jaxdl", "lstm", 2000.0, 40e6), _result("jaxdl-tuned", "lstm", 5000.0),
             _result("torch-eager", "lstm", 4000.0), _result("jaxdl", "cnn", 6000.0, 17e6)]
  meta = {"machine": {"cpu": "test cpu", "cores": 2, "date": "2026-11-27"}, "threads": 2,
          "windows": 5, "window_s": 1.0, "peak": {"flops_per_s": 400e9, "machine": "cpu|cpu"},
          "allocator": "same"}
  table = benchmark.markdown(results, meta)
  tuned_rows = table.split("| jaxdl-tuned / peer")[1]
  assert "| torch-eager |  | 1.25x |" in tuned_rows  # 5,000 / 4,000, on the lstm column.
  assert "| jaxdl |  | 2.50x |" in tuned_rows


def test_missing_peers_are_skipped_with_a_message(benchmark, monkeypatch, capsys):
  monkeypatch.setitem(benchmark.REQUIRES, "torch-eager", ("no_such_module_jaxdl",))
  assert not benchmark.available("torch-eager")
  assert "skipping torch-eager" in capsys.readouterr().err


@pytest.mark.parametrize("workload", ["cnn", pytest.param("lstm-sweep8", marks=pytest.mark.slow)])
def test_jaxdl_runner_trains_with_the_loops_step(benchmark, workload):
  from benchmark_impls import jaxdl_impl
  from benchmark_impls.workloads import WORKLOADS
  runner = jaxdl_impl.build(WORKLOADS[workload])
  before = np.asarray(runner.state.step)
  runner.warm_up()
  runner.run(2)
  assert np.all(np.asarray(runner.state.step) == before + 3)
  assert runner.examples_per_step == 128 * WORKLOADS[workload].members
  assert runner.info["flops_per_example"] > 0



@pytest.mark.slow
def test_the_recurrence_benchmark_checks_each_implementation_against_the_scan(
    monkeypatch, tmp_path, capsys):
  """scripts/bench_lstm_kernels.py at a tiny shape, as a GPU session would run it: every
  gradient is checked against the scan's, and a launch that fails is reported, not fatal
  (here a Pallas launch on a CPU, where only Pallas's interpreter runs)."""
  import json

  import jax

  monkeypatch.syspath_prepend(str(SCRIPTS))
  import bench_lstm_kernels

  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")  # So Pallas launches are tried.
  out = tmp_path / "rows.jsonl"
  monkeypatch.setattr(sys, "argv", [
      "bench_lstm_kernels.py", "--steps", "4", "--batch", "3", "--hidden", "8", "--rounds", "1",
      "--round-s", "0.01", "--launches", "16:4:0", "--out", str(out)])
  bench_lstm_kernels.main()
  rows = {r["impl"]: r for r in map(json.loads, out.read_text().splitlines())}
  assert rows["scan"]["max_rel_diff_vs_scan"] == 0.0
  assert rows["autodiff"]["max_rel_diff_vs_scan"] < 1e-5
  assert len(rows["autodiff"]["ms"]) == 1 and rows["autodiff"]["median_ms"] > 0
  assert "interpret" in rows["pallas b16 w4"]["failed"]
  assert "| pallas b16 w4 | failed: " in capsys.readouterr().out


def _tiny_lstm_workload():
  from benchmark_impls.workloads import Workload

  class Tiny(Workload):  # The seed LSTM's structure at a size a test runs in a second.
    vocab_size, seq_len, embed_dim, hidden, num_classes = 30, 6, 8, 8, 3

  return Tiny("tiny", "lstm")


def test_the_cudnn_peer_is_the_seed_lstm_by_the_numpy_equations(benchmark, getkey):
  """jax-cudnn's model with its cuDNN-layout weights, run through JAX's reference for the
  same call (cuDNN itself needs a GPU), against two stacked LSTMs in NumPy (the seed's
  equations, test_recurrent.numpy_lstm) on the embedded tokens, then the dense layer."""
  import jax
  import jax.numpy as jnp
  from benchmark_impls import jax_cudnn_impl as peer
  from jax.experimental import rnn
  from test_recurrent import numpy_lstm

  w = _tiny_lstm_workload()
  h = w.hidden
  layers = [{"input_projection": {"kernel": np.asarray(jax.random.normal(getkey(), (h, 4 * h))),
                                  "bias": np.asarray(jax.random.normal(getkey(), (4 * h,)))},
             "recurrent_kernel": np.asarray(jax.random.normal(getkey(), (h, 4 * h)))}
            for _ in range(peer.LAYERS)]
  params = peer.init_params(getkey(), w)
  # cuDNN's flat layout: every layer's W_ih [4H, D] and W_hh [4H, H], then its b_ih and b_hh.
  params["lstm"] = jnp.concatenate(
      [np.concatenate([p["input_projection"]["kernel"].T.ravel(),
                       p["recurrent_kernel"].T.ravel()]) for p in layers]
      + [np.concatenate([p["input_projection"]["bias"], np.zeros(4 * h)]) for p in layers])
  assert params["lstm"].size == rnn.get_num_params_in_lstm(h, h, peer.LAYERS, False)
  tokens = jax.random.randint(getkey(), (5, w.seq_len), 0, w.vocab_size)
  got = peer.logits(params, tokens, w, peer.reference_lstm)

  inputs = np.asarray(params["embed"])[np.asarray(tokens)]  # [B, T, E]
  for p in layers:
    carry = (np.zeros((5, h)), np.zeros((5, h)))
    outputs = []
    for t in range(w.seq_len):
      carry = numpy_lstm(p, inputs[:, t], carry)
      outputs.append(carry[1])
    inputs = np.stack(outputs, axis=1)
  expected = inputs[:, -1] @ np.asarray(params["dense"]) + np.asarray(params["dense_bias"])
  np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-5)


def test_the_cudnn_peer_learns_and_says_why_it_cannot_run_on_a_cpu(benchmark):
  import jax
  import optax
  from benchmark_impls import jax_cudnn_impl as peer
  from benchmark_impls.workloads import WORKLOADS

  w = _tiny_lstm_workload()
  tx = optax.adam(1e-2)
  params = peer.init_params(jax.random.key(0), w)
  opt_state = tx.init(params)
  step = peer.make_step(w, tx, peer.reference_lstm)
  tokens = jax.random.randint(jax.random.key(1), (16, w.seq_len), 0, w.vocab_size)
  labels = jax.random.randint(jax.random.key(2), (16,), 0, w.num_classes)
  losses = []
  with jax.numpy_dtype_promotion("standard"):  # Optax's own step-count arithmetic.
    for _ in range(40):
      params, opt_state, loss = step(params, opt_state, tokens, labels)
      losses.append(float(loss))
  assert losses[-1] < 0.5 * losses[0], losses  # It fits a batch: the gradient reaches cuDNN's weights.
  if jax.default_backend() != "gpu":
    with pytest.raises(benchmark.Unavailable, match="cuDNN's LSTM needs a GPU"):
      peer.build(WORKLOADS["lstm"])


def test_an_implementation_the_machine_cannot_run_is_skipped_with_its_reason(benchmark, capsys):
  import argparse

  import jax
  if jax.default_backend() == "gpu":
    pytest.skip("cuDNN's LSTM runs here")
  args = argparse.Namespace(threads=1, window_s=0.01, windows=1)
  rows = benchmark.measure_interleaved([("jax-cudnn", "lstm", "defaults", {})], args)
  assert rows == []
  assert "skipping jax-cudnn on lstm: cuDNN's LSTM needs a GPU" in capsys.readouterr().err


@pytest.mark.slow
def test_keras_on_its_jax_backend_trains_the_seeds_model(benchmark, tmp_path):
  """keras-jax in a fresh process (Keras reads its backend once, at import)."""
  import subprocess
  if importlib.util.find_spec("keras") is None:  # Not imported here: it would pick a backend.
    pytest.skip("keras is not installed (pip install -e '.[bench]')")
  code = ("import sys, json; sys.path.insert(0, 'scripts'); sys.path.insert(0, 'tests'); "
          "from benchmark_impls import keras_jax_impl; "
          "from test_benchmark_script import _tiny_lstm_workload as tiny; "
          "r = keras_jax_impl.build(tiny()); r.warm_up(); r.prepare(2); r.run(2); "
          "print(json.dumps(r.info))")
  out = subprocess.run([sys.executable, "-c", code], cwd=SCRIPTS.parent, capture_output=True,
                       text=True, env={**__import__("os").environ, "KERAS_HOME": str(tmp_path)})
  assert out.returncode == 0, out.stderr[-2000:]
  info = json.loads(out.stdout.strip().splitlines()[-1])
  assert info["backend"] == "jax" and info["keras"].startswith("3.")


def test_split_heap_runs_are_summarized_over_fresh_processes(benchmark):
  import bench_heaps
  row = lambda rate: {"setting": "s", "impl": "jaxdl", "workload": "lstm", "kernels": [],
                      "examples_per_s": rate}
  rows = bench_heaps.across_processes([[row(3000.0)], [row(5000.0)], [row(4000.0)]])
  assert len(rows) == 1
  assert (rows[0]["examples_per_s"], rows[0]["min"], rows[0]["max"]) == (4000.0, 3000.0, 5000.0)
  assert len(rows[0]["processes"]) == 3
