"""The ``jaxdl`` command line (thin: parsing, then a call into the library).

  jaxdl train CONFIG [--workdir DIR] [--config.KEY=VALUE ...] [--quiet] [--overwrite]
  jaxdl eval --workdir DIR

A problem with the user's input prints one line and exits with status 2;
``--debug`` shows the traceback instead.
"""

import argparse
import json
import pathlib
import sys
from collections.abc import Sequence

from jaxdl.errors import ConfigError, JaxdlError

EXIT_USER_ERROR = 2


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
  from jaxdl.configs import apply_overrides, load_config
  from jaxdl.train import train_and_evaluate

  config = apply_overrides(load_config(args.config), _split_overrides(extra))
  workdir = args.workdir or str(pathlib.Path("runs") / pathlib.Path(args.config.split(":")[0]).stem)
  results = train_and_evaluate(config, workdir, quiet=args.quiet, overwrite=args.overwrite,
                               command=sys.argv)
  _print_results(results, workdir)
  return 0


def _eval(args: argparse.Namespace, extra: Sequence[str]) -> int:
  from jaxdl.train import evaluate, load_run, make_eval_step
  from jaxdl.train.objectives import OBJECTIVES
  from jaxdl.train.run_folder import write_json

  if extra:
    raise ConfigError(f"jaxdl eval takes no config overrides, got {' '.join(extra)}")
  import jax

  exp, state, run = load_run(args.workdir)
  eval_step = jax.jit(make_eval_step(exp.model, OBJECTIVES[exp.datasets.spec.task]))
  results = {"step": int(state.step)}
  for name, split in (("val", exp.datasets.val), ("test", exp.datasets.test)):
    for key, value in evaluate(eval_step, state, split, exp.config.eval_batch_size).items():
      results[f"{name}_{key}"] = value
  write_json(run.file("eval.json"), results)
  _print_results(results, args.workdir)
  return 0


def _print_results(results: dict, workdir: str) -> None:
  shown = {k: v for k, v in results.items() if not isinstance(v, list)}
  print(json.dumps(shown, indent=2))
  print(f"run folder: {workdir}")


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="jaxdl", description=__doc__.split("\n")[0])
  parser.add_argument("--debug", action="store_true", help="show tracebacks for input errors")
  sub = parser.add_subparsers(dest="command", required=True)

  train = sub.add_parser("train", help="train an experiment config into a run folder")
  train.add_argument("config", help="experiments/NAME.py, or NAME.py:ARG for get_config(ARG)")
  train.add_argument("--workdir", help="run folder (default: runs/<config name>); an existing "
                     "one with the same config is resumed")
  train.add_argument("--quiet", action="store_true", help="log lines instead of a progress bar")
  train.add_argument("--overwrite", action="store_true", help="delete the workdir's old run first")
  train.set_defaults(handler=_train)

  evaluate = sub.add_parser("eval", help="re-evaluate a run's last checkpoint on val and test")
  evaluate.add_argument("--workdir", required=True)
  evaluate.set_defaults(handler=_eval)
  return parser


def main(argv: Sequence[str] | None = None) -> int:
  parser = _parser()
  args, extra = parser.parse_known_args(argv)
  try:
    return args.handler(args, extra)
  except JaxdlError as e:
    if args.debug:
      raise
    print(f"jaxdl: error: {e}", file=sys.stderr)
    return EXIT_USER_ERROR


if __name__ == "__main__":
  sys.exit(main())
