"""Runs a launcher script the way users do: ``python launch/<name>.py …`` (it must not need JAX or kd_jax)."""
import os
import shlex
import subprocess
import sys

from conftest import JIT_CACHE
from conftest import ROOT

STANDIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'standin')  # stand-in gcloud, sbatch, srun, uv
TIMEOUT_S = 400  # every wait on a simulated cluster is bounded
# The simulated clusters' smoke job, as tests/multiprocess runs it: SGD and one epoch (comparable exactly), with a
# checkpoint every 4 steps to resume from; no independent student (one more phase of the same kind, which
# tests/multiprocess and tests/mnist cover: here it would only lengthen the runs).
JOB = [*(f'--config.models.{name}.{field}' for name in ('cnn', 'mlp')
         for field in ('optimizer=sgd', 'learning_rate=0.05', 'num_epochs=1')),
       '--config.checkpoint_every_steps=4', "--config.setups=('cnn','cnn_to_mlp')"]
TEACHER_CHECKPOINT = ('cnn', 'seed_0', '4')  # the teacher's first checkpoint in the workdir: the moment to preempt
# The test session's compilation cache, for the jobs' processes too.
CACHE_ENV = {'JAX_COMPILATION_CACHE_DIR': JIT_CACHE, 'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS': '0',
             'JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES': '-1'}


def launch(script: str, *args: str, env=None, cwd=ROOT):
  """(exit code, stdout lines, stderr) of ``python launch/<script>.py args``."""
  env = {**{k: v for k, v in os.environ.items() if not k.startswith(('KD_JAX_', 'CLOUDSDK_'))}, **(env or {})}
  result = subprocess.run([sys.executable, os.path.join(ROOT, 'launch', f'{script}.py'), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
  return result.returncode, result.stdout.splitlines(), result.stderr


def words(line: str):
  return shlex.split(line)
