"""The device mesh, the step jitted over it, and batches placed on it.

One 1-D ``('data',)`` mesh: the batch is sharded along it and everything else
(train state, teacher variables) is replicated. ``jax.jit`` keeps global-batch
semantics (BatchNorm included), so a run's numbers do not depend on the number
of devices.
"""
from typing import Callable, Dict

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np


def data_mesh(devices=None) -> Mesh:
  """A 1-D ('data',) mesh over ``devices`` (default: all local devices)."""
  return Mesh(np.asarray(devices if devices is not None else jax.local_devices()), ('data',))


def jit_data_parallel(train_step: Callable, mesh: Mesh, batch_spec: P = P('data')) -> Callable:
  """Jits the step with the batch sharded over the mesh (``batch_spec``) and state/teacher replicated."""
  replicated, sharded = NamedSharding(mesh, P()), NamedSharding(mesh, batch_spec)
  return jax.jit(train_step, in_shardings=(replicated, sharded, replicated),
                 out_shardings=(replicated, replicated), donate_argnums=0)


def replicate(tree, mesh: Mesh):
  return jax.device_put(tree, NamedSharding(mesh, P()))


def check_batch_size(batch_size: int, mesh: Mesh, what: str):
  if batch_size % mesh.size:
    raise ValueError(f'{what} {batch_size} does not split over {mesh.size} devices; '
                     f'use a multiple of {mesh.size}')


def shard_batch(batch: Dict[str, np.ndarray], mesh: Mesh, batch_spec: P = P('data')):
  return jax.device_put(batch, NamedSharding(mesh, batch_spec))
