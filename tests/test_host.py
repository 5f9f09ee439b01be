"""The host allocator settings: never at import, by the jaxdl command, or by explicit opt-in."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

import jaxdl
from jaxdl import host

STATE = ("import jaxdl, jaxdl.models, jaxdl.training, json; from jaxdl.host import allocator_state; "
         "{before}print(json.dumps(allocator_state()))")


def _state_in_fresh_process(env_extra: dict, before: str = "") -> dict:
  env = {**os.environ, **env_extra}
  out = subprocess.run([sys.executable, "-c", STATE.format(before=before)], env=env,
                       capture_output=True, text=True, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_jaxdl_changes_nothing_in_the_process():
  state = _state_in_fresh_process({"JAXDL_HOST_ALLOCATOR": ""})
  assert state == {"applied": False, "reason": "not attempted"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
@pytest.mark.parametrize("env, before", [
    pytest.param({"JAXDL_HOST_ALLOCATOR": "tuned"}, "", marks=pytest.mark.slow),  # A script's opt-in (env).
    pytest.param({"JAXDL_HOST_ALLOCATOR": ""}, "jaxdl.tune_host_allocator(); ", marks=pytest.mark.slow),  # A call.
    ({"JAXDL_HOST_ALLOCATOR": ""}, "import jaxdl.cli as c; c.main(['bench-peak', '--size', '8']); "),
])
def test_the_command_and_an_explicit_opt_in_tune_it_before_jax_starts(env, before, tmp_path):
  state = _state_in_fresh_process({**env, "XDG_CACHE_HOME": str(tmp_path)}, before)
  assert state["applied"], state
  assert state["settings"] == host.SETTINGS
  assert state["jax_backend_started"] is False  # So the one-arena setting reaches XLA's threads.


@pytest.mark.slow
def test_the_settings_can_be_turned_off_for_the_command_too(tmp_path):
  state = _state_in_fresh_process({"JAXDL_HOST_ALLOCATOR": "default",
                                   "XDG_CACHE_HOME": str(tmp_path)},
                                  "import jaxdl.cli as c; c.main(['bench-peak', '--size', '8']); ")
  assert state == {"applied": False, "reason": "JAXDL_HOST_ALLOCATOR=default"}


def test_the_trim_threshold_can_be_lowered_and_a_bad_value_is_named(monkeypatch):
  monkeypatch.setenv(host.TRIM_ENV, "256")
  assert host.settings_from_environment() == {**host.SETTINGS, "trim_threshold": 256 << 20}
  monkeypatch.setenv(host.TRIM_ENV, "0")  # glibc then trims whenever the heap's top is free.
  assert host.settings_from_environment()["trim_threshold"] == 0
  monkeypatch.delenv(host.TRIM_ENV)
  assert host.settings_from_environment() == host.SETTINGS
  for bad in ("64M", "-1", "4096"):
    monkeypatch.setenv(host.TRIM_ENV, bad)
    with pytest.raises(jaxdl.ConfigError, match=f"JAXDL_HOST_TRIM_MB={bad!r} is not a whole"):
      host.settings_from_environment()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
@pytest.mark.slow
def test_the_command_applies_a_lowered_trim_threshold_and_refuses_a_bad_one(tmp_path):
  env = {"JAXDL_HOST_ALLOCATOR": "", "XDG_CACHE_HOME": str(tmp_path)}
  command = "import jaxdl.cli as c; print(c.main(['bench-peak', '--size', '8'])); "
  state = _state_in_fresh_process({**env, host.TRIM_ENV: "64"}, command)
  assert state["applied"] and state["settings"]["trim_threshold"] == 64 << 20
  bad = subprocess.run([sys.executable, "-m", "jaxdl.cli", "bench-peak", "--size", "8"],
                       env={**os.environ, **env, host.TRIM_ENV: "lots"}, capture_output=True,
                       text=True)
  assert bad.returncode == 2
  assert "JAXDL_HOST_TRIM_MB='lots' is not a whole number of MiB" in bad.stderr
  assert "Traceback" not in bad.stderr


def test_provenance_records_the_allocator_settings():
  from jaxdl.training.run_folder import provenance
  assert provenance(["jaxdl", "train"])["host_allocator"] == host.allocator_state()


def test_a_cached_peak_names_the_allocator_it_was_measured_under():
  from jaxdl import peak
  expected = "tuned-malloc" if host.allocator_state()["applied"] else "default-malloc"
  assert peak.machine_key().endswith("|" + expected)


@pytest.mark.slow
def test_the_command_keeps_compiled_programs_for_the_next_run(tmp_path):
  env = {**os.environ, "JAXDL_COMPILATION_CACHE": str(tmp_path / "xla")}
  argv = [sys.executable, "-m", "jaxdl.cli", "train", "experiments/seed_cnn_digits.py",
          "--workdir", str(tmp_path / "run"), "--quiet", "--config.num_epochs=1",
          "--config.batch_size=256"]
  out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300,
                       cwd=pathlib.Path(__file__).resolve().parents[1])
  assert out.returncode == 0, out.stderr
  assert any((tmp_path / "xla").iterdir())  # The training step's executable, among others.
  provenance = json.loads((tmp_path / "run" / "provenance.json").read_text())
  assert provenance["compilation_cache_dir"] == str(tmp_path / "xla")
  off = subprocess.run([sys.executable, "-c", "import jaxdl.host as h, json; "
                        "print(json.dumps(h.compilation_cache_dir()))"],
                       env={**env, "JAXDL_COMPILATION_CACHE": "off"}, capture_output=True,
                       text=True, check=True)
  assert json.loads(off.stdout) is None


_CONV = ("import jaxdl, jax, jax.numpy as jnp, json, os; {before}"
         "x, w = jnp.ones((16, 13, 13, 32)), jnp.ones((3, 3, 32, 64)); "
         "conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), 'VALID', "
         "dimension_numbers=('NHWC', 'HWIO', 'NHWC')); "
         "text = jax.jit(conv).lower(x, w).compile().as_text(); "
         "print(json.dumps({{'ynn_conv': '__ynn_fusion' in text, 'flags': os.environ.get('XLA_FLAGS', ''), "
         "'state': jaxdl.host.xla_flags_state()}}))")


def _conv_in_fresh_process(env_extra: dict, before: str = "") -> dict:
  env = {**os.environ, "XLA_FLAGS": "", "JAXDL_XLA_CPU": "", **env_extra}
  out = subprocess.run([sys.executable, "-c", _CONV.format(before=before)], env=env,
                       capture_output=True, text=True, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("env, before", [({"JAXDL_XLA_CPU": "tuned"}, ""),
                                         ({}, "jaxdl.tune_xla_flags(); ")])
def test_xla_flags_are_opt_in_and_change_how_convolutions_compile(env, before):
  untouched = _conv_in_fresh_process({})
  assert untouched["flags"] == "" and untouched["state"]["applied"] is False
  tuned = _conv_in_fresh_process(env, before)
  assert tuned["state"]["applied"] and tuned["flags"] == " ".join(host.XLA_CPU_FLAGS)
  # The flag reached XLA: YNNPACK compiled the convolution before, XLA's own kernel now.
  assert untouched["ynn_conv"] and not tuned["ynn_conv"]


@pytest.mark.slow
def test_xla_flags_come_too_late_once_jax_has_started_and_keep_the_users_own():
  late = _conv_in_fresh_process({}, "jax.devices(); jaxdl.tune_xla_flags(); ")
  assert not late["state"]["applied"] and "too late" in late["state"]["reason"]
  own = _conv_in_fresh_process({"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type=dot",
                                "JAXDL_XLA_CPU": "tuned"})
  assert own["flags"] == "--xla_cpu_experimental_ynn_fusion_type=dot" and own["ynn_conv"] is False
