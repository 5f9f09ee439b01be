"""The ``jaxdl`` command line (thin: parsing, then a call into the library).

  jaxdl train CONFIG [--workdir DIR] [--config.KEY=VALUE ...] [--quiet] [--overwrite]
  jaxdl eval --workdir DIR
  jaxdl sweep CONFIG --workdir DIR --sweep KEY=VALUES ... [--samples N] [--mode MODE]
  jaxdl report DIR [--format markdown|latex|csv] [--group-by AXIS ...] [--out FILE]
  jaxdl report DIR ... --rows KEY --cols KEY   (e.g. models x datasets, several folders)
  jaxdl report DIR --against KEY=VALUE         (every group paired with that one)
  jaxdl compare DIR_A DIR_B [--metric M ...]   (two configurations, paired)
  jaxdl plot DIR [--out DIR]
  jaxdl cite DIR
  jaxdl reproduce [STUDY] [--quick] --workdir DIR   (seed, kim2014, or PKG.MODULE:ATTR)
  jaxdl reproduce kim2014 --workdir DIR [--seeds N] [--split-seeds N] [--datasets mr,trec]
  jaxdl predict FILE --workdir RUN [--out CSV]  (sentences, one per line, or an .npy array)
  jaxdl explain --workdir RUN [--examples N]
  jaxdl bench-peak

A problem with the user's input prints one line and exits with status 2;
``--debug`` shows the traceback instead. SIGTERM or SIGINT stops training after
the current step, writes a checkpoint and exits with status 75; rerunning the
same command resumes.
"""

import argparse
import json
import pathlib
import sys
from collections.abc import Sequence

from jaxdl.errors import ConfigError, JaxdlError, Preempted

EXIT_USER_ERROR = 2
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: stopped by a signal after a checkpoint; rerun to resume.


def _positive_int(text: str) -> int:
  value = int(text)
  if value < 1:
    raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
  return value


def _split_overrides(extra: Sequence[str]) -> list[str]:
  """``--config.a=1 --config.b 2`` -> ``['a=1', 'b=2']``; anything else is an error."""
  overrides, i = [], 0
  while i < len(extra):
    arg = extra[i]
    if not arg.startswith("--config."):
      raise ConfigError(f"unrecognised argument {arg!r}; config overrides are written "
                        "--config.KEY=VALUE, e.g. --config.optim.learning_rate=3e-3")
    key_value = arg[len("--config."):]
    if "=" not in key_value:
      if i + 1 >= len(extra):
        raise ConfigError(f"{arg} needs a value: {arg}=VALUE")
      key_value, i = f"{key_value}={extra[i + 1]}", i + 1
    overrides.append(key_value)
    i += 1
  return overrides


def _train(args: argparse.Namespace, extra: Sequence[str]) -> int:
  from jaxdl import api

  workdir = args.workdir or str(pathlib.Path("runs") / pathlib.Path(args.config.split(":")[0]).stem)
  args.workdir = workdir  # Where a launcher keeps its tasks' logs too.
  if (status := _launched("train", args)) is not None:
    return status
  if args.distributed:
    from jaxdl.training import distributed

    distributed.initialize(args.coordinator, args.num_processes, args.process_id)
  results = api.train(args.config, workdir, _split_overrides(extra), quiet=args.quiet,
                      overwrite=args.overwrite)
  _print_results(results, workdir)
  return 0


def _eval(args: argparse.Namespace, extra: Sequence[str]) -> int:
  from jaxdl import api

  _no_extra("eval", extra)
  results = api.evaluate(args.workdir, args.checkpoint)
  _print_results(results, args.workdir)
  return 0


def _launched(command: str, args: argparse.Namespace) -> int | None:
  """With ``--launcher``: submits the command's tasks (sweeps/launch.py) and returns the exit
  status; None without it, when this process runs the command itself."""
  if not args.launcher:
    return None
  from jaxdl.sweeps import launch

  slurm = {key: getattr(args, f"slurm_{key}") for key in launch.SLURM_OPTIONS
           if getattr(args, f"slurm_{key}") is not None}
  plan = launch.Launch(args.launcher, args.tasks, args.parallelism, slurm)
  return launch.launch(command, launch.without_launch_options(args.argv), plan, args.workdir)


def _sweep(args: argparse.Namespace, extra: Sequence[str]) -> int:
  from jaxdl import api

  if (status := _launched("sweep", args)) is not None:
    return status
  members = api.sweep(args.config, args.workdir, args.sweep or [], _split_overrides(extra),
                      mode=args.mode, samples=args.samples, sweep_seed=args.sweep_seed,
                      quiet=args.quiet, overwrite=args.overwrite, shard=args.shard)
  done = sum(m["status"] == "done" for m in members)
  failed = sum(m["status"] == "failed" for m in members)
  print(f"{done}/{len(members)} members done" + (f", {failed} failed" if failed else "")
        + f"; results: {args.workdir}/results.csv; table: jaxdl report {args.workdir}")
  return 1 if failed else 0


def _tune(args: argparse.Namespace, extra: Sequence[str]) -> int:
  from jaxdl import api

  if (status := _launched("tune", args)) is not None:
    return status
  ran = api.tune(args.config, args.workdir, args.search or [], _split_overrides(extra),
                 trials=args.trials, storage=args.storage, sampler=args.sampler,
                 seed=args.seed, parallel=args.parallel, mode=args.mode, quiet=args.quiet)
  states = [t["state"] for t in ran]
  print(f"ran {len(ran)} trial(s) ({states.count('complete')} complete, "
        f"{states.count('pruned')} pruned, {states.count('failed')} failed); table: "
        f"jaxdl report {args.workdir}")
  return 1 if "failed" in states else 0


def _report(args: argparse.Namespace, extra: Sequence[str]) -> int:
  from jaxdl.sweeps import report as report_lib

  _no_extra("report", extra)
  if bool(args.rows) != bool(args.cols):
    raise ConfigError("--rows and --cols go together (e.g. --rows model.name --cols data.name)")
  if args.rows:
    table = report_lib.pivot(args.dir, args.rows, args.cols, (args.metric or [None])[0],
                             args.format)
  elif len(args.dir) > 1:
    raise ConfigError("several folders make one table with --rows KEY --cols KEY; without "
                      "them, report one folder")
  elif args.against:
    table = report_lib.against(args.dir[0], args.against, (args.metric or [None])[0],
                               args.group_by)
  else:
    table = report_lib.report(args.dir[0], fmt=args.format, group_by=args.group_by,
                              metrics=args.metric)
  return _write(table, args.out)


def _compare(args: argparse.Namespace, extra: Sequence[str]) -> int:
  from jaxdl.sweeps.report import compare_folders

  _no_extra("compare", extra)
  return _write(compare_folders(args.a, args.b, args.metric), args.out)


def _write(table: str, out: str | None) -> int:
  if out:
    pathlib.Path(out).write_text(table)
    print(f"wrote {out}")
  else:
    print(table, end="")
  return 0


def _plot(args: argparse.Namespace, extra: Sequence[str]) -> int:
  from jaxdl.sweeps.plot import plot

  _no_extra("plot", extra)
  for path in plot(args.dir, args.out, args.metric):
    print(f"wrote {path}")
  return 0


def _cite(args: argparse.Namespace, extra: Sequence[str]) -> int:
  from jaxdl.bibtex import cite

  _no_extra("cite", extra)
  print(cite(args.dir), end="")
  return 0


def _reproduce(args: argparse.Namespace, extra: Sequence[str]) -> int:
  from jaxdl.studies import StudyOptions
  from jaxdl.studies.reproduce import reproduce

  _no_extra("reproduce", extra)
  options = StudyOptions(seeds=args.seeds, split_seeds=args.split_seeds,
                         datasets=tuple(d for d in (args.datasets or "").split(",") if d))
  path = reproduce(args.workdir, quick=args.quick, command=sys.argv, study=args.study,
                   options=options)
  print(f"wrote {path}")
  return 0


def _predict(args: argparse.Namespace, extra: Sequence[str]) -> int:
  from jaxdl.api import predict_file

  _no_extra("predict", extra)
  print(f"wrote {predict_file(args.workdir, args.file, args.out, args.checkpoint)}")
  return 0


def _explain(args: argparse.Namespace, extra: Sequence[str]) -> int:
  from jaxdl.interpret.run import explain

  _no_extra("explain", extra)
  summary = explain(args.workdir, examples=args.examples, steps=args.steps)
  print(f"wrote {len(summary['files'])} files to {args.workdir}/explain; largest completeness "
        f"error of integrated gradients: {summary['max_abs_completeness_error']:.2e}")
  return 0


def _bench_peak(args: argparse.Namespace, extra: Sequence[str]) -> int:
  from jaxdl import peak

  _no_extra("bench-peak", extra)
  measurement = peak.measure_matmul_peak(args.size)
  path = peak.store_peak(measurement)
  print(f"{measurement['machine']}: {measurement['flops_per_s'] / 1e9:.1f} GFLOP/s "
        f"(float32 {args.size}x{args.size} matmul, median of {measurement['repeats']}; "
        f"{measurement['min'] / 1e9:.1f}-{measurement['max'] / 1e9:.1f}); cached in {path}")
  return 0


def _no_extra(command: str, extra: Sequence[str]) -> None:
  if extra:
    raise ConfigError(f"jaxdl {command} does not take {' '.join(extra)}")


def _print_results(results: dict, workdir: str) -> None:
  shown = {k: v for k, v in results.items() if not isinstance(v, list)}
  print(json.dumps(shown, indent=2))
  print(f"run folder: {workdir}")


def _add_training_commands(sub) -> None:
  """train, eval, sweep."""
  train = sub.add_parser("train", help="train an experiment config into a run folder")
  train.add_argument("config", help="experiments/NAME.py, or NAME.py:ARG for get_config(ARG)")
  train.add_argument("--workdir", help="run folder (default: runs/<config name>); an existing "
                     "one with the same config is resumed")
  train.add_argument("--quiet", action="store_true", help="log lines instead of a progress bar")
  train.add_argument("--overwrite", action="store_true", help="delete the workdir's old run first")
  train.add_argument("--distributed", action="store_true",
                     help="join a multi-process job (jax.distributed): one process per host")
  train.add_argument("--coordinator", help="HOST:PORT of process 0 (default: from the launcher)")
  train.add_argument("--num-processes", type=int)
  train.add_argument("--process-id", type=int)
  _add_launch_options(train, "processes joined by jax.distributed (SLURM: one per node)")
  train.set_defaults(handler=_train)

  evaluate = sub.add_parser("eval", help="re-evaluate a run's checkpoint on val and test")
  evaluate.add_argument("--workdir", required=True)
  evaluate.add_argument("--checkpoint", default="selected", choices=("selected", "last"),
                        help="the checkpoint selected on validation (default) or the last one")
  evaluate.set_defaults(handler=_eval)

  sweep = sub.add_parser("sweep", help="train a grid or random sweep of a config")
  sweep.add_argument("config")
  sweep.add_argument("--workdir", required=True, help="sweep folder (rerun to resume)")
  sweep.add_argument("--sweep", action="append", metavar="KEY=VALUES",
                     help="an axis: a,b,c | 0:5 | loguniform(lo,hi) | uniform(lo,hi) | "
                     "randint(lo,hi) | choice(a,b); repeatable")
  sweep.add_argument("--samples", type=int, default=0, help="random draws of the random axes")
  sweep.add_argument("--sweep-seed", type=int, default=0, help="seed of the random draws")
  sweep.add_argument("--mode", default="auto", choices=("auto", "vectorized", "sequential"),
                     help="vectorized: members that differ only in values train as one program")
  sweep.add_argument("--quiet", action="store_true")
  sweep.add_argument("--shard", metavar="I/N", help="train only shard I of N (0-based; whole "
                     "vectorized groups stay together); 'auto' reads SLURM_ARRAY_TASK_ID and "
                     "SLURM_ARRAY_TASK_COUNT")
  sweep.add_argument("--overwrite", action="store_true")
  _add_launch_options(sweep, "shards")
  sweep.set_defaults(handler=_sweep)


def _add_tune_command(sub) -> None:
  tune = sub.add_parser("tune", help="search hyperparameters with Optuna (each trial a run)")
  tune.add_argument("config")
  tune.add_argument("--workdir", required=True, help="search folder (rerun to continue)")
  tune.add_argument("--search", action="append", metavar="KEY=SPEC",
                    help="loguniform(lo,hi) | uniform(lo,hi) | randint(lo,hi) | choice(a,b) | "
                    "a,b,c; repeatable")
  tune.add_argument("--trials", type=int, default=20, help="trials in the study (all workers)")
  tune.add_argument("--storage", help="journal:PATH (many machines on a shared filesystem) or "
                    "a database URL (postgresql://...); default: WORKDIR/study.db (SQLite, one "
                    "machine)")
  tune.add_argument("--sampler", default="tpe", choices=("tpe", "random"))
  tune.add_argument("--seed", type=int, default=0, help="the sampler's seed")
  tune.add_argument("--parallel", type=int, default=1,
                    help="trials asked at once, trained as one vectorized program where they fit")
  tune.add_argument("--mode", default="auto", choices=("auto", "vectorized", "sequential"))
  tune.add_argument("--quiet", action="store_true")
  _add_launch_options(tune, "workers")
  tune.set_defaults(handler=_tune)


def _add_result_commands(sub) -> None:
  """report, compare, plot, cite, reproduce, predict, explain, parts, bench-peak."""
  rep = sub.add_parser("report", help="a sweep's results over seeds and folds as a table")
  rep.add_argument("dir", nargs="+", help="a sweep or run folder (several with --rows/--cols)")
  rep.add_argument("--format", default="markdown", choices=("markdown", "latex", "csv"))
  rep.add_argument("--group-by", nargs="+", help="axes that define a row (default: all but seed)")
  rep.add_argument("--metric", nargs="+", help="results.json keys (default: test metrics)")
  rep.add_argument("--rows", help="pivot: the config key of the rows (e.g. model.name)")
  rep.add_argument("--cols", help="pivot: the config key of the columns (e.g. data.name)")
  rep.add_argument("--against", help="KEY=VALUE: pair every group with this one (Holm)")
  rep.add_argument("--out", help="write to FILE instead of stdout")
  rep.set_defaults(handler=_report)

  cmp = sub.add_parser("compare", help="whether one configuration beats another (paired tests)")
  cmp.add_argument("a", help="a sweep or run folder of one configuration")
  cmp.add_argument("b", help="the other, on the same folds and seeds")
  cmp.add_argument("--metric", nargs="+", help="test metrics (default: the runs' test metrics)")
  cmp.add_argument("--out", help="write to FILE instead of stdout")
  cmp.set_defaults(handler=_compare)

  plt = sub.add_parser("plot", help="learning curves and hyperparameter response as PNG")
  plt.add_argument("dir")
  plt.add_argument("--out", help="folder for the PNG files (default: DIR/plots)")
  plt.add_argument("--metric", help="results.json key for the response plots")
  plt.set_defaults(handler=_plot)

  cit = sub.add_parser("cite", help="BibTeX for jaxdl and the papers behind a run")
  cit.add_argument("dir")
  cit.set_defaults(handler=_cite)

  _add_reproduce_command(sub)

  _add_trained_run_commands(sub)

  prt = sub.add_parser("parts", help="the built-in models, data sources, optimizers, "
                       "schedules, constraints and studies, and their config fields")
  prt.add_argument("kind", nargs="?", choices=sorted(_registries()), help="one kind only")
  prt.set_defaults(handler=_parts)

  peak = sub.add_parser("bench-peak", help="measure and cache this machine's matmul FLOP/s")
  peak.add_argument("--size", type=int, default=2048)
  peak.set_defaults(handler=_bench_peak)


def _add_trained_run_commands(sub) -> None:
  """predict and explain: what a trained run says about new inputs, and why."""
  pre = sub.add_parser("predict", help="a run's predictions for a file of sentences or an .npy "
                       "array, as CSV")
  pre.add_argument("file", help="one sentence per line (text runs), or a .npy array of inputs")
  pre.add_argument("--workdir", required=True)
  pre.add_argument("--out", help="the CSV (default: FILE with .predictions.csv)")
  pre.add_argument("--checkpoint", default="selected", choices=("selected", "last"))
  pre.set_defaults(handler=_predict)

  exp = sub.add_parser("explain", help="attributions and LSTM gates for a trained run")
  exp.add_argument("--workdir", required=True)
  exp.add_argument("--examples", type=int, default=4, help="examples (per class for images)")
  exp.add_argument("--steps", type=int, default=64, help="integrated-gradients path points")
  exp.set_defaults(handler=_explain)


def _add_reproduce_command(sub) -> None:
  """reproduce: the seed's studies, or a published table."""
  rep = sub.add_parser("reproduce", help="run the studies of the seed's claims (results.md), or "
                       "Kim (2014) Table 2 (kim2014.md)")
  rep.add_argument("study", nargs="?", default="seed",
                   help="seed (the seed document's claims), kim2014 (Kim 2014, Table 2), or "
                   "PKG.MODULE:ATTR of your own jaxdl.studies.Study")
  rep.add_argument("--workdir", required=True)
  rep.add_argument("--quick", action="store_true", help="a few minutes on 2 CPU cores (CI)")
  rep.add_argument("--seeds", type=_positive_int, default=1,
                   help="kim2014: runs per fold or test set (default 1)")
  rep.add_argument("--split-seeds", type=_positive_int, default=1,
                   help="kim2014: fold assignments (data.split_seed) per CV dataset (default 1)")
  rep.add_argument("--datasets", help="kim2014: comma-separated subset (default: all seven)")
  rep.set_defaults(handler=_reproduce)


def _registries() -> dict:
  from jaxdl import data, models, optim, studies

  return {"models": models.MODELS, "data": data.SOURCES, "optimizers": optim.OPTIMIZERS,
          "schedules": optim.SCHEDULES, "constraints": optim.CONSTRAINTS,
          "studies": studies.STUDIES}


def _parts(args: argparse.Namespace, extra: Sequence[str]) -> int:
  """One line per built-in part: its name and its own config fields with their defaults (a
  study: what it reproduces and its options)."""
  del extra
  for kind, registry in _registries().items():
    if args.kind not in (None, kind):
      continue
    print(f"{kind} ({registry.key}; or PKG.MODULE:ATTR for your own):")
    for name in registry.names():
      record = registry.resolve(name)
      if hasattr(record, "fields"):
        print(f"  {name:<28} " + " ".join(f"{k}={v!r}" for k, v in (record.fields or {}).items()))
      else:  # A schedule or a study: what it is (a study's options too).
        options = " ".join("--" + o.replace("_", "-") for o in getattr(record, "options", ()))
        print(f"  {name:<28} {record.description}" + (f"; {options}" if options else ""))
  return 0


def _add_launch_options(parser: argparse.ArgumentParser, tasks_are: str) -> None:
  from jaxdl.sweeps.launch import LAUNCHERS, SLURM_OPTIONS  # No submitit import: names only.

  group = parser.add_argument_group("launching as a job array (submitit)")
  group.add_argument("--launcher", choices=LAUNCHERS,
                     help="run the tasks as a SLURM job array, or as local processes")
  group.add_argument("--tasks", type=int, default=4, help=f"the array's size: {tasks_are}")
  group.add_argument("--parallelism", type=int, default=0, help="at most this many at once")
  for key, (_, kind, text) in SLURM_OPTIONS.items():
    group.add_argument(f"--slurm.{key}", dest=f"slurm_{key}", type=kind, help=text)


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="jaxdl", description=__doc__.split("\n")[0])
  parser.add_argument("--debug", action="store_true", help="show tracebacks for input errors")
  sub = parser.add_subparsers(dest="command", required=True)
  _add_training_commands(sub)
  _add_tune_command(sub)
  _add_result_commands(sub)
  return parser


def main(argv: Sequence[str] | None = None) -> int:
  # An application may tune its own process (a library may not: see host.py); before
  # anything starts JAX's thread pools.
  from jaxdl import host

  try:
    host.tune_allocator()
  except JaxdlError as e:  # A bad JAXDL_HOST_TRIM_MB: before the parser, so no --debug yet.
    print(f"jaxdl: error: {e}", file=sys.stderr)
    return EXIT_USER_ERROR
  parser = _parser()
  host.enable_compilation_cache()
  args, extra = parser.parse_known_args(argv)
  args.argv = list(sys.argv[1:] if argv is None else argv)  # What a launcher's tasks rerun.
  try:
    return args.handler(args, extra)
  except JaxdlError as e:
    if args.debug:
      raise
    print(f"jaxdl: error: {e}", file=sys.stderr)
    return EXIT_USER_ERROR
  except Preempted as e:
    print(f"jaxdl: {e}", file=sys.stderr)
    return EXIT_PREEMPTED
  except OSError as e:  # The disk or the file system, not jaxdl: name the file and the reason.
    if args.debug:
      raise
    where = f" ({e.filename})" if e.filename else ""
    print(f"jaxdl: error: {e.strerror or e}{where}; free space or fix the folder's permissions, "
          "then rerun the same command (runs resume from their last checkpoint)", file=sys.stderr)
    return EXIT_USER_ERROR


if __name__ == "__main__":
  sys.exit(main())
