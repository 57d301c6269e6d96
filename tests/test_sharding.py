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
