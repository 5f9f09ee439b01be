"""Sweeps and searches as job arrays through submitit (sweeps/launch.py): the local executor
runs the tasks as processes; the SLURM submission is checked as submitit writes it."""

import json
import os

import pytest

from conftest import EXPERIMENTS
from jaxdl import cli
from jaxdl.errors import ConfigError
from jaxdl.sweeps import launch

submitit = pytest.importorskip("submitit")


def test_each_task_reruns_the_command_as_one_shard_without_the_launchers_options():
  argv = ["sweep", "exp.py", "--workdir", "w", "--sweep", "seed=0:4", "--launcher", "slurm",
          "--tasks=3", "--slurm.partition", "gpu", "--slurm.time=30", "--config.num_epochs=2"]
  own = launch.without_launch_options(argv)
  assert own == ["sweep", "exp.py", "--workdir", "w", "--sweep", "seed=0:4",
                 "--config.num_epochs=2"]
  plan = launch.Launch("slurm", 3)
  assert [a[-2:] for a in launch.task_argvs("sweep", own, plan, "w")] == [
      ["--shard", "0/3"], ["--shard", "1/3"], ["--shard", "2/3"]]
  workers = launch.task_argvs("tune", ["tune", "exp.py", "--workdir", "w"], plan, "w")
  assert len(workers) == 3 and all(w[-2:] == ["--storage", "journal:w/study.journal"]
                                   for w in workers)  # Made for many machines on NFS.
  given = launch.task_argvs("tune", ["tune", "x", "--storage", "postgresql://h/db"], plan, "w")
  assert given[0].count("--storage") == 1


@pytest.mark.parametrize("argv, message", [
    (["sweep", "x", "--overwrite"], "every task delete the others' runs"),
    (["sweep", "x", "--shard", "0/2"], "gives each task its --shard"),
    (["train", "x", "--distributed"], "joins them itself; leave out --distributed"),
    (["train", "x", "--coordinator=h:1"], "joins them itself"),
    (["eval", "x"], "train, sweep and tune tasks, not eval")])
def test_launching_what_would_go_wrong_is_refused(argv, message):
  with pytest.raises(ConfigError, match=message):
    launch.task_argvs(argv[0], argv, launch.Launch("local", 2), "w")


def test_bad_launch_options_are_named():
  with pytest.raises(ConfigError, match="--tasks must be at least 1"):
    launch.Launch("local", 0)
  with pytest.raises(ConfigError, match="--slurm.partition is for --launcher slurm, not local"):
    launch.Launch("local", 2, slurm={"partition": "gpu"})


def _fake_slurm(folder, monkeypatch):
  """``srun`` and an ``sbatch`` that keeps the script it is given and answers with a job id,
  first on PATH: submitit submits to it as to a cluster."""
  bin_dir = folder / "bin"
  bin_dir.mkdir()
  (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
  (bin_dir / "sbatch").write_text(f"#!/bin/sh\ncp \"$1\" {folder}/submitted.sh\n"
                                  "echo 'Submitted batch job 4242'\n")
  for tool in ("srun", "sbatch"):
    (bin_dir / tool).chmod(0o755)
  monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_the_slurm_array_reaches_sbatch_with_the_options(tmp_path, monkeypatch, capsys):
  """One job array: its size, throttle, partition, time and GPUs in the sbatch script, each
  task rerunning the command (pickled by submitit) in the sweep folder."""
  _fake_slurm(tmp_path, monkeypatch)
  workdir = tmp_path / "sweep"
  argv = ["sweep", str(EXPERIMENTS / "seed_cnn_digits.py"), "--workdir", str(workdir),
          "--sweep", "seed=0:8", "--launcher", "slurm", "--tasks", "4", "--parallelism", "2",
          "--slurm.partition=gpu", "--slurm.time", "30", "--slurm.gpus_per_task=1"]
  assert cli.main(argv) == 0  # Submitted, not waited for.
  out = capsys.readouterr().out
  assert "4 sweep task(s) submitted (slurm): 4242_0" in out and "squeue -j 4242" in out
  script = (tmp_path / "submitted.sh").read_text()
  for line in ("#SBATCH --array=0-3%2", "#SBATCH --partition=gpu", "#SBATCH --time=30",
               "#SBATCH --gpus-per-task=1", "#SBATCH --job-name=jaxdl-sweep"):
    assert line in script, (line, script)
  assert str(workdir / launch.SUBMITIT_DIR) in script
  assert len(list((workdir / launch.SUBMITIT_DIR).rglob("*_submitted.pkl"))) == 4


def test_a_training_job_asks_slurm_for_one_process_per_node(tmp_path, monkeypatch, capsys):
  """One job (not an array) of --tasks nodes, one task each; each runs the command with
  --distributed, where JAX finds SLURM's coordinator itself."""
  _fake_slurm(tmp_path, monkeypatch)
  workdir = tmp_path / "run"
  argv = ["train", str(EXPERIMENTS / "seed_cnn_digits.py"), "--workdir", str(workdir),
          "--launcher", "slurm", "--tasks", "4", "--slurm.gpus_per_task=8", "--slurm.time=60"]
  assert cli.main(argv) == 0
  assert "1 train task(s) submitted (slurm): 4242" in capsys.readouterr().out
  script = (tmp_path / "submitted.sh").read_text()
  for line in ("#SBATCH --nodes=4", "#SBATCH --ntasks-per-node=1", "#SBATCH --gpus-per-task=8",
               "#SBATCH --job-name=jaxdl-train"):
    assert line in script, (line, script)
  assert "--array" not in script
  pickled = list((workdir / launch.SUBMITIT_DIR).rglob("*_submitted.pkl"))
  assert len(pickled) == 1
  delayed = submitit.helpers.DelayedSubmission.load(pickled[0])
  assert delayed.args[0][-1] == "--distributed" and delayed.args[1] is None
  assert "--launcher" not in delayed.args[0]


@pytest.mark.slow
def test_a_local_training_job_is_two_processes_that_train_one_run(tmp_path, capsys):
  """Two processes of this machine, joined by jax.distributed, train one run: each feeds
  its own device half of every global batch (process_count 2, two devices)."""
  workdir = tmp_path / "run"
  argv = ["train", str(EXPERIMENTS / "seed_cnn_digits.py"), "--workdir", str(workdir),
          "--quiet", "--config.num_epochs=1", "--config.batch_size=64",
          "--config.data.augment_shift=0", "--launcher", "local", "--tasks", "2"]
  assert cli.main(argv) == 0
  assert "1 train task(s) submitted (local)" in capsys.readouterr().out
  provenance = json.loads((workdir / "provenance.json").read_text())
  assert provenance["process_count"] == 2 and len(provenance["devices"]) == 2
  assert json.loads((workdir / "results.json").read_text())["test_accuracy"] > 0.5
  logs = list((workdir / launch.SUBMITIT_DIR).glob("*_log.out"))
  assert len(logs) == 2  # A log per process: submitit ran two tasks of one job.


def test_a_preempted_task_is_resubmitted_with_the_same_command():
  """submitit calls checkpoint() on timeout or preemption; the resubmitted task reruns the
  same command, whose run folders resume."""
  task = launch._task_class()()
  argv = ["sweep", "x", "--workdir", "w", "--shard", "1/4"]
  again = task.checkpoint(argv)
  assert isinstance(again, submitit.helpers.DelayedSubmission)
  assert again.function is task and again.args == (argv,)


@pytest.mark.slow
def test_a_local_array_trains_every_member_in_its_own_task_processes(tmp_path, capsys):
  workdir = tmp_path / "sweep"
  argv = ["sweep", str(EXPERIMENTS / "seed_cnn_digits.py"), "--workdir", str(workdir),
          "--quiet", "--sweep", "seed=0:3", "--config.num_epochs=1", "--config.batch_size=256",
          "--launcher", "local", "--tasks", "2"]
  assert cli.main(argv) == 0
  assert "2 sweep task(s) submitted (local)" in capsys.readouterr().out
  members = json.loads((workdir / "sweep.json").read_text())["members"]
  assert [m["status"] for m in members] == ["done"] * 3
  shards = set()
  for member in sorted(workdir.glob("m00*")):
    command = json.loads((member / "provenance.json").read_text())["sessions"][0]["command"]
    shards.add(command[command.index("--shard") + 1])
  assert shards == {"0/2", "1/2"}  # Each task trained its own shard...
  logs = list((workdir / launch.SUBMITIT_DIR).glob("*_log.out"))
  assert len(logs) == 2  # ...in a process of its own, which submitit ran and logged.
  assert str(os.getpid()) not in "".join(p.read_text() for p in logs)
