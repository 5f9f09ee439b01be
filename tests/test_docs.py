"""The documentation covers the API, and the README keeps its promises.

`mkdocs build --strict` (a CI step of its own) fails on a broken link, a page missing from the
navigation or a tutorial that raises; these tests check what the build cannot: that every
public name has a docstring and a reference page, and that the README's set-up commands are
the ones CI runs.
"""

import inspect
import re

import pytest

import jaxdl
from conftest import ROOT as REPO

REFERENCE = REPO / "docs" / "reference"
# What a reference page writes for each public name: `::: jaxdl.NAME`, except the version,
# whose docstring lives in the module that holds it.
DIRECTIVE = re.compile(r"^::: ([\w.]+)\s*$", re.M)
ALSO_DOCUMENTED = {"__version__": "jaxdl.version"}
# The records a part is made of, beyond those exported from jaxdl.
RECORDS = ["jaxdl.optim.SchedulePart"]


def _directives() -> set[str]:
  return {m for page in REFERENCE.glob("*.md") for m in DIRECTIVE.findall(page.read_text())}


def _own_docstring(obj) -> str:
  """The object's own docstring: not a parent class's, nor the signature dataclasses write."""
  doc = vars(obj).get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
  if inspect.isclass(obj) and doc and re.fullmatch(rf"{obj.__name__}\(.*\)", doc, re.S):
    return ""  # dataclasses' default: the signature, not a description.
  return (doc or "").strip()


def test_every_public_name_has_a_reference_page():
  documented = _directives()
  assert len(documented) > 20, "no ::: directives found: is this test reading the pages?"
  missing = [n for n in jaxdl.__all__ if ALSO_DOCUMENTED.get(n, f"jaxdl.{n}") not in documented]
  assert not missing, f"public names without a reference page (docs/reference/): {missing}"
  assert set(RECORDS) <= documented


def test_every_public_name_has_its_own_docstring():
  undocumented = [name for name in jaxdl.__all__ if name not in ALSO_DOCUMENTED
                  and len(_own_docstring(getattr(jaxdl, name))) < 20]
  assert not undocumented, f"public names without a docstring: {undocumented}"
  from jaxdl import version
  assert "version" in (version.__doc__ or "")


def test_the_docstring_check_tells_a_dataclass_signature_from_a_description():
  import dataclasses

  @dataclasses.dataclass
  class Bare:
    x: int

  @dataclasses.dataclass
  class Described:
    """A record with a description of its own."""
    x: int

  assert _own_docstring(Bare) == "" and _own_docstring(Described)


def test_every_reference_directive_names_something_that_exists():
  import importlib

  for path in _directives():
    module, _, attr = path.rpartition(".")
    try:
      obj = importlib.import_module(path)
    except ModuleNotFoundError:
      obj = getattr(importlib.import_module(module), attr, None)
    assert obj is not None, f"docs/reference names {path}, which does not exist"


def test_every_tutorial_is_in_the_site_navigation():
  nav = (REPO / "mkdocs.yml").read_text()
  tutorials = sorted(p.name for p in (REPO / "docs" / "tutorials").glob("*.py"))
  assert tutorials and all(f"tutorials/{t}" in nav for t in tutorials)


def test_the_readme_is_one_screen_and_its_setup_commands_are_the_ones_ci_runs():
  readme = (REPO / "README.md").read_text()
  assert len(readme.splitlines()) <= 150
  block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1).strip().splitlines()
  assert len(block) == 2, "the README starts with exactly two set-up commands"
  install_and_run, install_and_test = block
  assert "pip install -e ." in install_and_run and "jaxdl train experiments/" in install_and_run
  test_command = install_and_test.rpartition("&& ")[2]
  assert test_command in (REPO / ".ci" / "run").read_text()


def test_the_readmes_links_point_at_files_that_exist():
  readme = (REPO / "README.md").read_text()
  links = [t for t in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
           if not re.match(r"https?://", t)]
  assert links, "the README links nowhere: is this test reading it?"
  missing = [t for t in links if not (REPO / t).exists()]
  assert not missing, f"README links to missing files: {missing}"


@pytest.mark.parametrize("where", ["CITATION.cff", "CHANGELOG.md"])
def test_the_version_is_written_once_and_quoted_consistently(where):
  text = (REPO / where).read_text()
  if where == "CITATION.cff":
    assert re.search(r"^version: (\S+)$", text, re.M).group(1) == jaxdl.__version__
  else:  # The newest release in the changelog is the package's version (or Unreleased above it).
    released = re.findall(r"^## (\d+\.\d+\.\d+)", text, re.M)
    assert released and released[0] == jaxdl.__version__
  assert (REPO / "LICENSE").read_text().count("Apache License") >= 1
  assert 'version = "' not in (REPO / "pyproject.toml").read_text()


@pytest.mark.slow
def test_the_readmes_own_model_example_trains(tmp_path):
  """The README's one-file example, extracted as written, trains and learns the digits."""
  from jaxdl import cli

  readme = (REPO / "README.md").read_text()
  code = re.search(r"```python\n(# experiments/my_cnn.py.*?)```", readme, re.S).group(1)
  (tmp_path / "my_cnn.py").write_text(code)
  workdir = tmp_path / "run"
  assert cli.main(["train", str(tmp_path / "my_cnn.py"), "--workdir", str(workdir), "--quiet",
                   "--config.num_epochs=3"]) == 0
  import json
  results = json.loads((workdir / "results.json").read_text())
  assert results["test_accuracy"] > 0.8  # Ten classes: chance is 0.1.


@pytest.mark.slow
def test_the_one_file_one_line_parts_of_the_guide_train_together(tmp_path):
  """docs/guides/own-parts.md's parts file and its six lines, extracted as written, train."""
  import json

  from jaxdl import cli

  guide = (REPO / "docs" / "guides" / "own-parts.md").read_text()
  parts_file = re.search(r"```python\n# my_parts.py\n(.*?)```", guide, re.S).group(1)
  lines = re.search(r"```python\n# in get_config\(\), one line each:\n(.*?)```", guide,
                    re.S).group(1)
  (tmp_path / "my_parts.py").write_text(parts_file)
  body = "\n".join(f"  {line}" for line in lines.strip().splitlines())
  (tmp_path / "exp.py").write_text("from jaxdl.configs import default\n\n\ndef get_config():\n"
                                   f"  config = default.get_config()\n{body}\n"
                                   "  config.num_epochs = 3\n  return config\n")
  assert cli.main(["train", str(tmp_path / "exp.py"), "--workdir", str(tmp_path / "run"),
                   "--quiet"]) == 0
  results = json.loads((tmp_path / "run" / "results.json").read_text())
  assert "test_top_margin" in results and results["test_accuracy"] > 0.5  # Chance: 1/3.
