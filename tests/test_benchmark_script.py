"""scripts/benchmark.py: its table arithmetic and the jaxdl runner (no timings are checked)."""

import importlib.util
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
