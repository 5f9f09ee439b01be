"""Sweeps: expansion, vectorized members equal lone runs, resume, grouping, reports, plots."""

import csv
import json

import chex
import numpy as np
import pytest

from conftest import EXPERIMENTS, assert_trees_close_in_norm, experiment
from jaxdl import cli
from jaxdl.errors import ConfigError
from jaxdl.sweeps import axes as axes_lib
from jaxdl.sweeps import run as run_lib
from jaxdl.sweeps.groups import group_members
from jaxdl.sweeps.report import report
from jaxdl.sweeps.run import run_sweep
from jaxdl.training import load_run
from jaxdl.training.loop import train_group

TINY = ("num_epochs=1", "batch_size=256", "data.augment_shift=0")


def test_grid_expansion_is_the_cartesian_product():
  axes = [axes_lib.parse_axis("optim.learning_rate=1e-3,3e-3"), axes_lib.parse_axis("seed=0:3")]
  members = axes_lib.expand(axes)
  assert members == [{"optim.learning_rate": lr, "seed": s}
                     for lr in (1e-3, 3e-3) for s in (0, 1, 2)]
  assert axes_lib.parse_axis("seed=0:10:4").values == (0, 4, 8)
  assert axes_lib.parse_axis("model.cell=lstm,gru").values == ("lstm", "gru")


def test_random_expansion_is_reproducible_and_in_range():
  axes = [axes_lib.parse_axis("optim.learning_rate=loguniform(1e-4,1e-2)"),
          axes_lib.parse_axis("model.cell=choice(lstm,gru)"),
          axes_lib.parse_axis("data.max_len=randint(10,12)"), axes_lib.parse_axis("seed=0:2")]
  members = axes_lib.expand(axes, samples=20, sweep_seed=3)
  assert len(members) == 40 and members == axes_lib.expand(axes, samples=20, sweep_seed=3)
  assert members != axes_lib.expand(axes, samples=20, sweep_seed=4)
  lrs = np.array([m["optim.learning_rate"] for m in members])
  assert lrs.min() >= 1e-4 and lrs.max() <= 1e-2 and lrs.min() < 1e-3 < lrs.max()
  assert {m["model.cell"] for m in members} == {"lstm", "gru"}
  assert {m["data.max_len"] for m in members} == {10, 11, 12}


@pytest.mark.parametrize("text, message", [
    ("optim.learning_rate", "must be KEY=VALUES"),
    ("x=loguniform(0,1)", "low > 0"),
    ("x=uniform(1)", "takes two numbers"),
    ("seed=3:1", "empty range"),
])
def test_bad_axes_are_clear_errors(text, message):
  with pytest.raises(ConfigError, match=message):
    axes_lib.parse_axis(text)


def test_random_axes_need_samples():
  with pytest.raises(ConfigError, match="needs --samples"):
    axes_lib.expand([axes_lib.parse_axis("optim.learning_rate=uniform(0.1,0.2)")])


def _together_and_alone(configs, tmp_path):
  assert len(group_members(configs)) == 1
  together = train_group(configs, [tmp_path / f"v{i}" for i in range(len(configs))],
                            vectorized=True, quiet=True)
  for i, config in enumerate(configs):
    alone = train_group([config], [tmp_path / f"l{i}"], vectorized=False, quiet=True)[0]
    _, state_v, _ = load_run(tmp_path / f"v{i}")
    _, state_l, _ = load_run(tmp_path / f"l{i}")
    yield together[i], alone, state_v, state_l


# Both convolution paths: the native kernel (with its fused conv-relu-pool blocks, where g++
# is installed) and XLA's.
@pytest.mark.slow
@pytest.mark.parametrize("conv_kernel", ["native", "xla"])
def test_vectorized_members_equal_their_lone_runs(tmp_path, conv_kernel):
  # A vmapped step rounds differently from a lone one (XLA batches the dense layers), and
  # early SGD with momentum 0.9 is chaotic at float32 level: a max-pool window or relu whose
  # inputs differ in the last bit flips, so one entry of a bias can differ by percent after
  # six steps (seen on both paths: 2026-12-01, a parameter change of 1e-7 moved the gradient
  # norm by 4e-5 within 8 steps). Each leaf is compared in norm; a member trained with another's
  # learning rate, momentum or data differs by 1e-3 to 1 of the norm. test_native_conv checks
  # the kernel under vmap bit for bit.
  configs = [experiment("seed_cnn_digits", *TINY, "optim.name=sgd", f"seed={s}",
                        f"model.conv_kernel={conv_kernel}",
                        f"optim.learning_rate={lr}", f"optim.momentum={m}",
                        f"optim.weight_decay={wd}")
             for s, lr, m, wd in [(0, 0.05, 0.9, 1e-4), (1, 0.1, 0.5, 1e-3), (0, 0.02, 0.9, 5e-4)]]
  for together, alone, state_v, state_l in _together_and_alone(configs, tmp_path):
    assert_trees_close_in_norm(state_v.params, state_l.params, rtol=5e-4)
    assert_trees_close_in_norm(state_v.opt_state, state_l.opt_state, rtol=2e-2)
    assert together["test_loss"] == pytest.approx(alone["test_loss"], rel=1e-4)
    assert together["test_accuracy"] == pytest.approx(alone["test_accuracy"], abs=10 / 359)
    assert together["seed"] == alone["seed"]


@pytest.mark.slow
def test_vectorized_dp_members_each_sample_their_own_poisson_batches(tmp_path, monkeypatch):
  """Each DP-SGD member of a vectorized group draws its own Poisson batches (its seed's) and
  its own noise: the same draws and the same parameters as its lone run."""
  from jaxdl.data import batches as batches_lib

  drawn = []
  real = batches_lib.PoissonPlan.__call__

  def recording(plan, step):
    batch = real(plan, step)
    drawn.append((plan.seed, step, float(batch["mask"].sum())))
    return batch

  monkeypatch.setattr(batches_lib.PoissonPlan, "__call__", recording)
  configs = [experiment("dp_cnn_digits", "num_epochs=1", "data.image_size=0",
                        "model.name=plugin_models:TinyCNN", "model.batch_norm=false",
                        f"seed={s}") for s in (0, 1)]
  runs = list(_together_and_alone(configs, tmp_path))
  together = {(seed, step): n for seed, step, n in drawn[:2 * 21]}
  alone = {(seed, step): n for seed, step, n in drawn[2 * 21:]}
  assert {seed for seed, _ in together} == {0, 1} and together == alone
  assert [together[0, s] for s in range(21)] != [together[1, s] for s in range(21)]
  for vectorized, lone, state_v, state_l in runs:
    chex.assert_trees_all_close(state_v.params, state_l.params, rtol=1e-4, atol=1e-5)
    assert vectorized["privacy_epsilon"] == lone["privacy_epsilon"]


@pytest.mark.slow
def test_vectorized_adamw_members_match_their_lone_runs(tmp_path):
  configs = [experiment("adding_lstm", "num_epochs=1", "data.num_train=512", "data.num_test=64",
                        "data.seq_len=10", "model.hidden_sizes=(8,)", f"seed={s}",
                        "optim.name=adamw", f"optim.learning_rate={lr}", f"optim.weight_decay={wd}",
                        f"optim.grad_clip_norm={clip}")
             for s, lr, wd, clip in [(0, 1e-2, 0.0, 1.0), (1, 3e-3, 1e-2, 0.5)]]
  for together, alone, state_v, state_l in _together_and_alone(configs, tmp_path):
    # Adam divides by sqrt(v): where a gradient is ~0, rounding can flip a step's sign.
    chex.assert_trees_all_close(state_v.params, state_l.params, rtol=1e-3, atol=1e-4)
    assert together["test_mse"] == pytest.approx(alone["test_mse"], rel=1e-3)


@pytest.mark.slow
def test_shape_changing_axes_are_split_into_groups(tmp_path, capsys):
  base = experiment("adding_lstm", "num_epochs=1", "data.num_train=256", "data.num_test=64",
                    "data.seq_len=8", "batch_size=64")
  axes = [axes_lib.parse_axis("model.hidden_sizes=(4,),(6,)"), axes_lib.parse_axis("seed=0:2")]
  messages = []
  members = run_sweep(base, axes, tmp_path, mode="vectorized", quiet=True, log=messages.append)
  assert [m["group"] for m in members] == [0, 0, 1, 1]
  assert any("2 groups: model.hidden_sizes change shapes or code" in m for m in messages)
  assert sum("together (vectorized)" in m for m in messages) == 2
  assert all(m["status"] == "done" for m in members)
  sweep = json.loads((tmp_path / "sweep.json").read_text())
  assert sweep["status"] == "done" and sweep["mode_used"] == "vectorized"


class _Stop(Exception):
  pass


@pytest.mark.slow
def test_a_half_finished_sequential_sweep_resumes(tmp_path, monkeypatch):
  base = experiment("seed_cnn_digits", *TINY)
  axes = [axes_lib.parse_axis("seed=0:3")]
  real = run_lib.train_group
  calls = []

  def stop_at_second(configs, workdirs, **kwargs):
    calls.append(workdirs[0].name)
    if len(calls) == 2:
      raise _Stop
    return real(configs, workdirs, **kwargs)

  monkeypatch.setattr(run_lib, "train_group", stop_at_second)
  with pytest.raises(_Stop):
    run_sweep(base, axes, tmp_path, mode="sequential", quiet=True, log=lambda m: None)
  first_results = (tmp_path / "m000" / "results.json").read_text()
  calls.clear()
  monkeypatch.setattr(run_lib, "train_group", lambda *a, **k: (calls.append(a[1][0].name),
                                                                  real(*a, **k))[1])
  members = run_sweep(base, axes, tmp_path, mode="sequential", quiet=True, log=lambda m: None)
  assert calls == ["m001", "m002"]  # m000 was finished and is skipped.
  assert (tmp_path / "m000" / "results.json").read_text() == first_results
  assert [m["status"] for m in members] == ["done"] * 3


def test_a_different_sweep_in_the_same_folder_is_refused(tmp_path):
  base = experiment("seed_cnn_digits", *TINY)
  run_sweep(base, [axes_lib.parse_axis("seed=0:1")], tmp_path, mode="sequential", quiet=True,
            log=lambda m: None)
  with pytest.raises(Exception, match="holds a different sweep"):
    run_sweep(base, [axes_lib.parse_axis("seed=0:2")], tmp_path, mode="sequential", quiet=True,
              log=lambda m: None)


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory):
  folder = tmp_path_factory.mktemp("sweep")
  code = cli.main(["sweep", str(EXPERIMENTS / "adding_lstm.py"), "--workdir", str(folder),
                   "--quiet", "--sweep", "optim.learning_rate=1e-3,1e-2", "--sweep", "seed=0:3",
                   "--config.num_epochs=2", "--config.data.num_train=512",
                   "--config.data.num_test=128", "--config.data.seq_len=10",
                   "--config.model.hidden_sizes=(8,)"])
  assert code == 0
  return folder


@pytest.mark.slow
def test_report_numbers_match_results_csv(small_sweep):
  with (small_sweep / "results.csv").open() as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 6 and {r["status"] for r in rows} == {"done"}
  table = report(small_sweep, fmt="csv")
  lines = list(csv.DictReader(table.splitlines()))
  # Ranked on validation (val_loss, lower is better), not in sweep order.
  val = [float(line["val_loss_mean"]) for line in lines]
  assert val == sorted(val) and lines[0]["rank"] == "1"
  for line in lines:
    mses = [float(r["test_mse"]) for r in rows
            if float(r["optim.learning_rate"]) == float(line["optim.learning_rate"])]
    assert float(line["test_mse_mean"]) == pytest.approx(np.mean(mses), rel=1e-12)
    assert float(line["test_mse_std"]) == pytest.approx(np.std(mses, ddof=1), rel=1e-12)
    # One split: the test set's sampling error, bootstrapped from the saved predictions.
    assert line["test_mse_ci_method"] == "bootstrap over 128 test examples"
    assert float(line["test_mse_ci95_low"]) < np.mean(mses) < float(line["test_mse_ci95_high"])
  markdown = report(small_sweep)
  assert "95% CI" in markdown and "Ranked by val_loss (lower is better" in markdown
  latex = report(small_sweep, fmt="latex")
  assert r"\toprule" in latex and r"\bottomrule" in latex


def test_plot_writes_valid_pngs(small_sweep, tmp_path, capsys):
  assert cli.main(["plot", str(small_sweep), "--out", str(tmp_path)]) == 0
  written = sorted(p.name for p in tmp_path.iterdir())
  assert written == ["learning_curves.png", "response_optim.learning_rate.png"]
  for name in written:
    data = (tmp_path / name).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


@pytest.mark.slow
def test_report_cli_writes_a_file(small_sweep, tmp_path, capsys):
  out = tmp_path / "table.tex"
  assert cli.main(["report", str(small_sweep), "--format", "latex", "--out", str(out)]) == 0
  assert out.read_text().startswith(r"\begin{tabular}")
  assert cli.main(["report", str(small_sweep), "--group-by", "nope"]) == 2
  assert "not a swept axis" in capsys.readouterr().err


def test_cite_names_the_papers_behind_the_run(small_sweep, capsys):
  assert cli.main(["cite", str(small_sweep)]) == 0
  bibtex = capsys.readouterr().out
  assert "@software{jaxdl" in bibtex and "hochreiter1997long" in bibtex
  assert "le2015simple" in bibtex and "kingma2015adam" in bibtex
  assert "lecun1998gradient" not in bibtex


def test_sweep_axes_from_the_experiment_file(tmp_path, capsys):
  path = tmp_path / "exp.py"
  path.write_text(
      "import sys\nsys.path.insert(0, %r)\n" % str(EXPERIMENTS)
      + "from seed_cnn_digits import get_config as base\n"
      "def get_config():\n  c = base(); c.num_epochs = 1; c.batch_size = 256; return c\n"
      "def sweep():\n  return {'seed': [0, 1]}\n")
  assert cli.main(["sweep", str(path), "--workdir", str(tmp_path / "s"), "--quiet",
                   "--mode", "sequential"]) == 0
  assert json.loads((tmp_path / "s" / "sweep.json").read_text())["axes"] == [
      {"key": "seed", "values": [0, 1]}]


def test_a_sweep_from_before_a_new_config_key_still_resumes(tmp_path):
  base = experiment("seed_cnn_digits", *TINY)
  axes = [axes_lib.parse_axis("seed=0:1")]
  run_sweep(base, axes, tmp_path, mode="sequential", quiet=True, log=lambda m: None)
  # Make the saved files look as if written before 'dtype' existed.
  for path in (tmp_path / "sweep.json", tmp_path / "m000" / "config.json"):
    saved = json.loads(path.read_text())
    (saved["base_config"] if "base_config" in saved else saved).pop("dtype")
    path.write_text(json.dumps(saved))
  trained = []
  original = run_lib.train_group
  run_lib.train_group = lambda *a, **k: trained.append(a) or original(*a, **k)
  try:
    members = run_sweep(base, axes, tmp_path, mode="sequential", quiet=True, log=lambda m: None)
  finally:
    run_lib.train_group = original
  assert not trained and members[0]["status"] == "done"


def _fake_sweep(folder, members, axes):
  """A sweep folder written by hand: members are (overrides, status, results or error)."""
  folder.mkdir()
  record = {"axes": [{"key": k, "values": []} for k in axes], "members": []}
  for i, (overrides, status, payload) in enumerate(members):
    name = f"m{i:03d}"
    entry = {"name": name, "overrides": overrides, "status": status, "group": 0}
    if status == "done":
      (folder / name).mkdir()
      (folder / name / "results.json").write_text(json.dumps(
          {"selection_metric": "val_accuracy", "selection_mode": "max", **payload}))
    else:
      entry["error"] = payload
    record["members"].append(entry)
  (folder / "sweep.json").write_text(json.dumps(record))
  return folder


def _ok(val, test):
  return {"val_accuracy": val, "test_accuracy": test, "test_loss": 1.0 - test}


def test_report_ranks_by_validation_and_counts_failures(tmp_path):
  folder = _fake_sweep(tmp_path / "s", [
      ({"model.cell": "lstm", "seed": 0}, "done", _ok(0.90, 0.80)),
      ({"model.cell": "lstm", "seed": 1}, "done", _ok(0.92, 0.82)),
      ({"model.cell": "gru", "seed": 0}, "done", _ok(0.80, 0.90)),
      ({"model.cell": "gru", "seed": 1}, "failed", "m003: non-finite loss at step 40; ..."),
      ({"model.cell": "rnn", "seed": 0}, "done", _ok(0.70, 0.70)),
  ], ["model.cell", "seed"])
  lines = list(csv.DictReader(report(folder, fmt="csv").splitlines()))
  assert [line["model.cell"] for line in lines] == ["lstm", "gru", "rnn"]
  assert [line["rank"] for line in lines] == ["1", "2", "3"]  # Not gru, the best on test.
  # No saved predictions and no folds: no paired test, so no group is shown as best.
  assert [line["best"] for line in lines] == ["0", "0", "0"]
  assert [line["n_failed"] for line in lines] == ["0", "1", "0"]
  assert list(lines[0])[5] == "val_accuracy_mean"  # The selection metric leads.
  markdown = report(folder)
  assert "| lstm | 1 | 2 | 0 | 0.9100 ± 0.0141" in markdown
  assert "| gru | 2 | 1 | 1 | 0.8000 | 0.9000 |" in markdown  # One run: no ± and no CI.
  assert "m003: non-finite loss at step 40" in markdown and "1 member(s) failed" in markdown
  assert "Ranked by val_accuracy (higher is better" in markdown
  assert "Not tested for significance" in markdown


def test_report_intervals_stay_in_the_metrics_range_and_reach_latex(tmp_path):
  folder = _fake_sweep(tmp_path / "s", [({"seed": s}, "done", _ok(v, v))
                                        for s, v in enumerate((1.0, 1.0, 0.55))], ["seed"])
  lines = list(csv.DictReader(report(folder, fmt="csv").splitlines()))
  assert float(lines[0]["test_accuracy_ci95_high"]) == 1.0  # t gives 1.48; clipped.
  assert float(lines[0]["test_accuracy_ci95_low"]) == pytest.approx(
      0.85 - 4.302653 * np.std([1.0, 1.0, 0.55], ddof=1) / np.sqrt(3), rel=1e-6)
  latex = report(folder, fmt="latex")
  assert r"95\% CI" in latex and "1.0000]$" in latex


def test_report_averages_over_cross_validation_folds(tmp_path):
  folder = _fake_sweep(tmp_path / "s", [({"data.fold": f, "optim.learning_rate": lr}, "done",
                                         _ok(0.7 + f / 100, 0.7 + f / 100))
                                        for lr in (1e-3, 1e-2) for f in range(3)],
                       ["optim.learning_rate", "data.fold"])
  lines = list(csv.DictReader(report(folder, fmt="csv").splitlines()))
  assert sorted((line["optim.learning_rate"], line["runs"]) for line in lines) == [
      ("0.001", "3"), ("0.01", "3")]
  assert float(lines[0]["test_accuracy_mean"]) == pytest.approx(0.71)


@pytest.mark.slow
def test_shards_of_one_sweep_run_at_once_without_clobbering_it(tmp_path):
  import subprocess
  import sys

  from conftest import ROOT

  folder = tmp_path / "sweep"
  argv = [sys.executable, "-m", "jaxdl.cli", "sweep", str(EXPERIMENTS / "seed_cnn_digits.py"),
          "--workdir", str(folder), "--quiet", "--mode", "sequential", "--sweep", "seed=0:4",
          "--config.num_epochs=1", "--config.batch_size=256"]
  shards = [subprocess.Popen([*argv, "--shard", f"{i}/2"], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for i in range(2)]
  outs = [p.communicate(timeout=600) for p in shards]
  assert [p.returncode for p in shards] == [0, 0], [o[1][-2000:] for o in outs]
  assert "shard 0/2: 2 of 4 members" in outs[0][1] and "shard 1/2: 2 of 4 members" in outs[1][1]
  record = json.loads((folder / "sweep.json").read_text())
  assert [m["status"] for m in record["members"]] == ["done"] * 4 and record["status"] == "done"
  with (folder / "results.csv").open() as f:
    assert [r["member"] for r in csv.DictReader(f)] == ["m000", "m001", "m002", "m003"]


def test_a_partial_sweep_is_reported_with_its_missing_members(tmp_path):
  base = experiment("seed_cnn_digits", *TINY)
  members = run_sweep(base, [axes_lib.parse_axis("seed=0:4")], tmp_path, mode="sequential",
                      quiet=True, shard=(1, 2), log=lambda m: None)
  assert [m["status"] for m in members] == ["pending", "done", "pending", "done"]
  table = report(tmp_path)
  assert "| 2 |" in table and "2 member(s) have not finished yet" in table


@pytest.mark.parametrize("text, environ, expected", [
    ("2/5", {}, (2, 5)), (None, {}, (0, 1)),
    ("auto", {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "4",
              "SLURM_ARRAY_TASK_COUNT": "4"}, (3, 4)),
])
def test_shards_from_the_command_line_or_a_slurm_array(text, environ, expected):
  assert run_lib.parse_shard(text, environ) == expected


@pytest.mark.parametrize("text, message", [("5/5", "index must be in 0..4"), ("a/b", "I/N"),
                                           ("auto", "SLURM_ARRAY_TASK_ID")])
def test_bad_shards_are_clear_errors(text, message):
  with pytest.raises(ConfigError, match=message):
    run_lib.parse_shard(text, {})


def test_a_one_epoch_learning_curve_is_a_visible_point():
  """A line through one point draws nothing: each epoch is a marker."""
  import matplotlib.pyplot as plt

  from jaxdl.sweeps.plot import _draw_curves

  fig, ax = plt.subplots()
  _draw_curves(ax, {"lr=0.1": [[{"train_loss": 1.0, "val_loss": 0.9}]]}, "loss")
  lines = ax.get_lines()
  assert len(lines) == 2 and all(line.get_marker() == "o" for line in lines)
  assert [list(line.get_xdata()) for line in lines] == [[1], [1]]
  plt.close(fig)
