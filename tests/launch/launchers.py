"""Runs a launcher script the way users do: ``python launch/<name>.py …`` (it must not need JAX or kd_jax)."""
import os
import shlex
import subprocess
import sys

from conftest import ROOT


def launch(script: str, *args: str, env=None, cwd=ROOT):
  """(exit code, stdout lines, stderr) of ``python launch/<script>.py args``."""
  env = {**{k: v for k, v in os.environ.items() if not k.startswith(('KD_JAX_', 'CLOUDSDK_'))}, **(env or {})}
  result = subprocess.run([sys.executable, os.path.join(ROOT, 'launch', f'{script}.py'), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
  return result.returncode, result.stdout.splitlines(), result.stderr


def words(line: str):
  return shlex.split(line)
