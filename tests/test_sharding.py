import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from kd_jax import sharding


def test_the_mesh_spans_the_local_devices_and_batches_are_split_over_it():
  mesh = sharding.data_mesh()
  assert mesh.size == jax.local_device_count() == 8 and mesh.axis_names == ('data',)
  batch = sharding.shard_batch({'inputs': np.arange(16, dtype=np.float32)}, mesh)
  shards = batch['inputs'].addressable_shards
  assert len(shards) == 8 and all(s.data.shape == (2,) for s in shards)


def test_batch_that_does_not_split_over_devices():
  with pytest.raises(ValueError, match='does not split over 8 devices'):
    sharding.check_batch_size(100, sharding.data_mesh(), 'config.student.batch_size')


def test_distributed_init_uses_jax_detection_when_asked_and_the_explicit_env_otherwise(monkeypatch):
  calls = []
  monkeypatch.setattr(jax.distributed, 'initialize', lambda *args, initialization_timeout, **kwargs: calls.append(
      (args, kwargs)))
  monkeypatch.setattr(jax.config, 'update', lambda *args: None)  # no gloo switch in the test process
  assert sharding.initialize_distributed({sharding.DISTRIBUTED_ENV: 'auto'}) and calls[-1] == ((), {})
  assert sharding.initialize_distributed({'SLURM_NTASKS': '4'}) and calls[-1] == ((), {})
  assert sharding.initialize_distributed({sharding.COORDINATOR_ENV: 'h:1', sharding.NUM_PROCESSES_ENV: '2',
                                          sharding.PROCESS_ID_ENV: '1'})
  assert calls[-1] == (('h:1',), {'num_processes': 2, 'process_id': 1})
  assert not sharding.initialize_distributed({'SLURM_NTASKS': '1'}) and len(calls) == 3
  with pytest.raises(ValueError, match="KD_JAX_DISTRIBUTED='yes': the only value is auto"):
    sharding.initialize_distributed({sharding.DISTRIBUTED_ENV: 'yes'})


def test_a_process_whose_peers_never_come_gives_up_with_one_line_after_the_timeout(tmp_path):
  with socket.socket() as s:  # a port where no coordinator listens
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
  env = {sharding.COORDINATOR_ENV: f'127.0.0.1:{port}', sharding.NUM_PROCESSES_ENV: '2',
         sharding.PROCESS_ID_ENV: '1'}
  code = f'from kd_jax import sharding; sharding.initialize_distributed({env!r}, timeout=3)'
  result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1].startswith(
      f'kd_jax: error: process 1 of 2 (the coordinator at 127.0.0.1:{port}) waited 3 s for the other processes')
  assert 'Check failure' not in result.stderr  # JAX's own deadline (a C++ abort) never came
