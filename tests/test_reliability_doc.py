"""docs/reliability.md names the tests behind each row; every one of them must exist."""
import ast
import os
import re

from conftest import ROOT


def test_every_test_named_in_the_reliability_page_exists():
  text = open(os.path.join(ROOT, 'docs', 'reliability.md')).read()
  named = re.findall(r'`(tests/[\w/]+\.py)::(\w+)`', text)
  assert len(named) >= 20
  for path, name in named:
    tree = ast.parse(open(os.path.join(ROOT, path)).read())
    functions = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    assert name in functions, f'docs/reliability.md names {path}::{name}, which does not exist'
