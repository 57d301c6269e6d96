"""The package layout stays true: shared machinery knows no task, and tasks do not import each other."""
import ast
import os
import subprocess
import sys

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'kd_jax')
TASKS = ('kd_jax.mnist', 'kd_jax.sva')
# Entry point -> the tasks it may import statically: none — kd_jax.main and the seed grid pick a task's module by name
# (importlib), and kd_jax.validate checks either job's config.
ENTRY_POINTS = {'kd_jax.main': set(), 'kd_jax.grid': set(), 'kd_jax.validate': set()}


def _module_name(path: str) -> str:
  rel = os.path.relpath(path, os.path.dirname(PACKAGE))[:-len('.py')].replace(os.sep, '.')
  return rel[:-len('.__init__')] if rel.endswith('.__init__') else rel


def _kd_jax_imports(path: str):
  """Every kd_jax module that the file imports (static: import and from-import statements, at any depth)."""
  tree = ast.parse(open(path).read())
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      found.add(node.module)
      found.update(f'{node.module}.{alias.name}' for alias in node.names)
  return {name for name in found if name.split('.')[0] == 'kd_jax'}


def _import_graph():
  modules = {}
  for root, _, files in os.walk(PACKAGE):
    for name in files:
      if name.endswith('.py'):
        modules[_module_name(os.path.join(root, name))] = os.path.join(root, name)
  return {module: {m for m in _kd_jax_imports(path) if m in modules} for module, path in modules.items()}


def _reachable(graph, start):
  seen, todo = set(), [start]
  while todo:
    for dep in graph[todo.pop()] - seen:
      seen.add(dep)
      todo.append(dep)
  return seen


def _task_of(module: str):
  return next((task for task in TASKS if module == task or module.startswith(task + '.')), None)


GRAPH = _import_graph()


@pytest.mark.parametrize('module', sorted(set(GRAPH) - set(ENTRY_POINTS)))
def test_no_module_reaches_into_another_task(module):
  own_task = _task_of(module)
  foreign = sorted(m for m in _reachable(GRAPH, module) if _task_of(m) not in (None, own_task))
  assert not foreign, f'{module} ({own_task or "shared"}) imports {foreign}'


@pytest.mark.parametrize('entry_point', sorted(ENTRY_POINTS))
def test_entry_points_import_only_their_tasks(entry_point):
  assert {_task_of(m) for m in _reachable(GRAPH, entry_point)} - {None} == ENTRY_POINTS[entry_point]


def test_the_graph_sees_real_imports():
  # Guards the check above against passing vacuously.
  assert {'kd_jax.training', 'kd_jax.mnist.data'} <= _reachable(GRAPH, 'kd_jax.mnist.task')
  assert {'kd_jax.phases', 'kd_jax.sva.data'} <= _reachable(GRAPH, 'kd_jax.sva.task')
  assert _task_of('kd_jax.sva.models') == 'kd_jax.sva' and _task_of('kd_jax.phases') is None


def test_importing_the_sva_task_loads_no_mnist_code():
  code = ('import sys, kd_jax.sva.task, kd_jax.main; '
          'print(sorted(m for m in sys.modules if m.startswith("kd_jax.mnist")))')
  out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120, check=True)
  assert out.stdout.strip() == '[]'
