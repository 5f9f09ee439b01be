"""jaxdl's modules import one way: no import cycle, not even one held apart by an import
inside a function (such a cycle is still a cycle: move the shared piece down a floor)."""

import ast
import pathlib

import jaxdl

ROOT = pathlib.Path(jaxdl.__file__).resolve().parent


def _modules() -> dict[str, pathlib.Path]:
  out = {}
  for path in ROOT.rglob("*.py"):
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
  return out


def _imports(name: str, path: pathlib.Path, modules) -> set[str]:
  """The jaxdl modules ``name`` imports anywhere in its file (functions included)."""
  package = name if path.name == "__init__.py" else name.rpartition(".")[0]
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      found.update(a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        kept = package.split(".")[:len(package.split(".")) - node.level + 1]
        base = ".".join(kept + ([base] if base else []))
      found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                   for a in node.names)
  return {m for m in found if m in modules and m != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """Strongly connected components of more than one module (Tarjan's algorithm)."""
  index, low, stack, on_stack, found = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in graph[v]:
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while not component or component[-1] != v:
        component.append(stack.pop())
        on_stack.discard(component[-1])
      if len(component) > 1:
        found.append(sorted(component))

  for v in graph:
    if v not in index:
      visit(v)
  return found


def test_no_module_imports_its_way_back_to_itself():
  modules = _modules()
  graph = {name: _imports(name, path, modules) for name, path in modules.items()}
  assert sum(map(len, graph.values())) > 100  # The graph was read, not empty.
  assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
  assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_lazy_export_is_also_visible_to_type_checkers():
  """jaxdl loads its API on first use (so the command can tune the allocator before JAX
  starts); the TYPE_CHECKING block names the same objects for IDEs, and py.typed ships."""
  tree = ast.parse((ROOT / "__init__.py").read_text())
  block = next(n for n in tree.body if isinstance(n, ast.If)
               and getattr(n.test, "id", "") == "TYPE_CHECKING")
  seen = {(a.asname or a.name): (node.module, a.name) for node in block.body
          for a in node.names}
  assert seen == dict(jaxdl._EXPORTS)
  assert set(jaxdl._EXPORTS) <= set(jaxdl.__all__)
  for name in jaxdl.__all__:
    assert getattr(jaxdl, name) is not None
  assert (ROOT / "py.typed").exists()
