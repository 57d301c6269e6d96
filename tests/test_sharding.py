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
  monkeypatch.setattr(jax.distributed, 'initialize', lambda *args, **kwargs: calls.append((args, kwargs)))
  monkeypatch.setattr(jax.config, 'update', lambda *args: None)  # no gloo switch in the test process
  assert sharding.initialize_distributed({sharding.DISTRIBUTED_ENV: 'auto'}) and calls[-1] == ((), {})
  assert sharding.initialize_distributed({'SLURM_NTASKS': '4'}) and calls[-1] == ((), {})
  assert sharding.initialize_distributed({sharding.COORDINATOR_ENV: 'h:1', sharding.NUM_PROCESSES_ENV: '2',
                                          sharding.PROCESS_ID_ENV: '1'})
  assert calls[-1] == (('h:1',), {'num_processes': 2, 'process_id': 1})
  assert not sharding.initialize_distributed({'SLURM_NTASKS': '1'}) and len(calls) == 3
  with pytest.raises(ValueError, match="KD_JAX_DISTRIBUTED='yes': the only value is auto"):
    sharding.initialize_distributed({sharding.DISTRIBUTED_ENV: 'yes'})
