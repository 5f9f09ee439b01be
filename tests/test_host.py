"""The host allocator settings applied when jaxdl is imported (jaxdl/host.py)."""

import json
import os
import subprocess
import sys

import pytest

from jaxdl import host

STATE = "import jaxdl, json; from jaxdl.host import allocator_state; print(json.dumps(allocator_state()))"


def _state_in_fresh_process(env_extra: dict) -> dict:
  env = {**os.environ, **env_extra}
  out = subprocess.run([sys.executable, "-c", STATE], env=env, capture_output=True, text=True,
                       check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_import_applies_the_allocator_settings_before_jax_starts():
  state = _state_in_fresh_process({"JAXDL_HOST_ALLOCATOR": ""})
  assert state["applied"], state
  assert state["settings"] == host.SETTINGS
  assert state["jax_backend_started"] is False  # So the one-arena setting reaches XLA's threads.


def test_the_settings_can_be_turned_off():
  state = _state_in_fresh_process({"JAXDL_HOST_ALLOCATOR": "default"})
  assert state == {"applied": False, "reason": "JAXDL_HOST_ALLOCATOR=default"}


def test_provenance_records_the_allocator_settings():
  from jaxdl.train.run_folder import provenance
  assert provenance(["jaxdl", "train"])["host_allocator"] == host.allocator_state()


def test_a_cached_peak_names_the_allocator_it_was_measured_under():
  from jaxdl import cost
  expected = "tuned-malloc" if host.allocator_state()["applied"] else "default-malloc"
  assert cost.machine_key().endswith("|" + expected)
