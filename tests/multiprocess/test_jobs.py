"""Several JAX processes on this machine (gloo collectives over localhost) train like one process.

Each job runs as 2 processes × 2 CPU devices and as 1 process × 4 devices (the main job as 4 processes × 1 device: a
SLURM job of 2 nodes × 2 tasks, tests/launch/test_slurm.py): the same global mesh size and global
batches, on the offline demo data (the jobs' environment is cleared of KD_JAX_* settings). Reductions across
processes add in another order, so the runs agree to rounding after a step, and training amplifies that (measured:
smoke teacher losses equal to 1e-7 for 8 SGD steps, 5e-4 apart after 24). The runs are therefore short (one epoch of
each phase) and use SGD (Adam rescales near-zero gradients of dead units into full steps, see tests/test_training.py).
"""
import json
import os
import socket
import subprocess
import sys
import time

import chex
import jax
import numpy as np
import pytest

from conftest import JIT_CACHE
from conftest import ROOT
from conftest import assert_same_numbers
from conftest import load_config
from kd_jax import checkpoints
from kd_jax import phases
from kd_jax import seed_grid
from kd_jax import sharding
from kd_jax.mnist import models

TIMEOUT_S = 300  # per job; every wait is bounded and every process is killed on the way out


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _start(module, args, workdir, num_processes, devices_per_process, log_dir):
  """Starts the job as ``num_processes`` processes; returns the Popen objects."""
  port = _free_port()
  procs = []
  for i in range(num_processes):
    env = {k: v for k, v in os.environ.items() if not k.startswith('KD_JAX_')}
    env.update(XLA_FLAGS=f'--xla_force_host_platform_device_count={devices_per_process}', JAX_PLATFORMS='cpu',
               # The session's compilation cache: repeated runs of a job compile their programs once.
               JAX_COMPILATION_CACHE_DIR=JIT_CACHE, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='-1')
    if num_processes > 1:
      env.update({sharding.COORDINATOR_ENV: f'127.0.0.1:{port}', sharding.NUM_PROCESSES_ENV: str(num_processes),
                  sharding.PROCESS_ID_ENV: str(i)})
    log = open(os.path.join(log_dir, f'{os.path.basename(workdir)}_{i}.log'), 'w')
    procs.append(subprocess.Popen([sys.executable, '-m', module, *args, f'--workdir={workdir}'], cwd=ROOT, env=env,
                                  stdout=log, stderr=subprocess.STDOUT))
  return procs


def _wait(procs, timeout=TIMEOUT_S):
  deadline = time.monotonic() + timeout
  try:
    for p in procs:
      p.wait(timeout=max(1.0, deadline - time.monotonic()))
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait(timeout=30)
  return [p.returncode for p in procs]


def _run(module, args, workdir, num_processes, devices_per_process, tmp_path):
  codes = _wait(_start(module, args, workdir, num_processes, devices_per_process, str(tmp_path)))
  assert codes == [0] * num_processes, open(os.path.join(tmp_path, os.path.basename(workdir) + '_0.log')).read()[-3000:]
  with open(os.path.join(workdir, 'grid.json')) as f:
    return json.load(f)


def _unique_metric_records(workdir):
  records = [line for line in open(os.path.join(workdir, 'metrics.jsonl'))]
  steps = [(json.loads(r)['phase'], json.loads(r)['step']) for r in records]
  assert records and len(steps) == len(set(steps))  # one writer: process 0



def sgd(*models):
  """Overrides that train ``models`` one epoch of SGD."""
  return [f'--config.models.{name}.{field}' for name in models
          for field in ('optimizer=sgd', 'learning_rate=0.05', 'num_epochs=1')]


GRID_SGD = sgd('cnn', 'mlp')


@pytest.fixture(scope='module')
def smoke_runs(tmp_path_factory):
  """The smoke job as 2 processes × 2 devices and as 1 process × 4 devices: (directory, multi, single results)."""
  base = tmp_path_factory.mktemp('smoke')
  args = ['--config=configs/smoke.py', *GRID_SGD]
  return (base, _run('kd_jax.main', args, str(base / 'multi'), 2, 2, base),
          _run('kd_jax.main', args, str(base / 'single'), 1, 4, base))


def test_the_main_job_as_two_processes_equals_one_process(smoke_runs):
  base, multi, single = smoke_runs
  assert multi['num_devices'] == single['num_devices'] == 4
  _unique_metric_records(str(base / 'multi'))
  assert sorted(os.listdir(base / 'multi')) == sorted(os.listdir(base / 'single'))
  saved = [checkpoints.read_meta(str(base / run / 'cnn_to_mlp' / 'seed_0')) for run in ('multi', 'single')]
  # Same settings and training data; the teacher's digest is bit-exact, and the teachers differ at rounding level.
  digest_key = 'teacher (digest of its variables or cached logits)'
  assert {k: v for k, v in saved[0]['settings'].items() if k != digest_key} == {
      k: v for k, v in saved[1]['settings'].items() if k != digest_key}
  # The final weights of every setup agree to rounding; then the metrics.
  config = load_config('smoke')
  for setup, name, role in (('cnn', 'cnn', 'teacher'), ('mlp', 'mlp', 'teacher'), ('cnn_to_mlp', 'mlp', 'student')):
    cfg = seed_grid.role_config(config, name, role)
    model = models.create_model(name, **cfg.model_kwargs)
    variables = [phases.restore_variables(model, str(base / run / setup / 'seed_0'), cfg,
                                          np.zeros((1, 28, 28, 1), np.float32))[0] for run in ('multi', 'single')]
    chex.assert_trees_all_close(variables[0], variables[1], rtol=1e-4, atol=1e-5)
  assert_same_numbers(multi, single)


def test_the_vmapped_grid_with_cached_logits_as_two_processes_equals_one_process(tmp_path):
  args = ['--config=configs/grid_smoke.py', '--config.seed_parallelism=vmap', "--config.setups=('mlp', 'mlp_to_mlp')",
          '--config.models.mlp.optimizer=sgd', '--config.models.mlp.learning_rate=0.05', '--config.models.mlp.num_epochs=1']
  multi = _run('kd_jax.grid', args, str(tmp_path / 'multi'), 2, 2, tmp_path)
  single = _run('kd_jax.grid', args, str(tmp_path / 'single'), 1, 4, tmp_path)
  assert multi['vmapped'] and multi['cache_teacher_logits']
  assert_same_numbers(multi, single)
  _unique_metric_records(str(tmp_path / 'multi'))


def test_sva_with_length_grouped_batches_as_two_processes_equals_one_process(tmp_path):
  args = ['--config=configs/sva_smoke.py', '--config.num_seeds=1', "--config.setups=('lstm', 'lstm_to_transformer')",
          '--config.seed_parallelism=sequential', *sgd('lstm', 'transformer')]
  multi = _run('kd_jax.main', args, str(tmp_path / 'multi'), 2, 2, tmp_path)
  single = _run('kd_jax.main', args, str(tmp_path / 'single'), 1, 4, tmp_path)
  assert_same_numbers(multi, single)
  _unique_metric_records(str(tmp_path / 'multi'))


def test_a_half_configured_multi_process_run_is_an_error():
  with pytest.raises(ValueError, match='half-configured: set KD_JAX_NUM_PROCESSES, KD_JAX_PROCESS_ID too'):
    sharding.initialize_distributed({sharding.COORDINATOR_ENV: '127.0.0.1:1234'})
  assert not sharding.initialize_distributed({})  # one process: nothing to start
  assert jax.process_count() == 1
