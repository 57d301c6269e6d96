"""The device mesh, the step jitted over it, and batches placed on it.

One 1-D ``('data',)`` mesh: the batch is sharded along it and everything else
(train state, teacher variables) is replicated. ``jax.jit`` keeps global-batch
semantics (BatchNorm included), so a run's numbers do not depend on the number
of devices.
"""
import os
import sys
import threading
import time
from typing import Any, Callable, Dict, Optional

import jax
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np


def data_mesh(devices=None) -> Mesh:
  """A 1-D ('data',) mesh over ``devices`` (default: every device of every process: one job, not one per host)."""
  return Mesh(np.asarray(devices if devices is not None else jax.devices()), ('data',))


def jit_data_parallel(train_step: Callable, mesh: Mesh, batch_spec: P = P('data'),
                      compiler_options: Optional[Dict[str, Any]] = None) -> Callable:
  """Jits the step with the batch sharded over the mesh (``batch_spec``) and state/teacher replicated."""
  replicated, sharded = NamedSharding(mesh, P()), NamedSharding(mesh, batch_spec)
  return jax.jit(train_step, in_shardings=(replicated, sharded, replicated),
                 out_shardings=(replicated, replicated), donate_argnums=0, compiler_options=compiler_options)


def replicate(tree, mesh: Mesh):
  """``tree`` on every device of the mesh; with several processes, every process must pass the same values."""
  sharding = NamedSharding(mesh, P())
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)
  return jax.tree_util.tree_map(
      lambda x: jax.make_array_from_callback(np.shape(x), sharding, lambda index: np.asarray(to_host(x))[index]),
      tree)


def replicated_like(abstract_tree, mesh: Mesh = None):
  """Abstract arrays placed replicated on ``mesh`` (default: every device): restore targets that fit this run,
  whatever the device topology of the run that saved them."""
  target = NamedSharding(mesh if mesh is not None else data_mesh(), P())
  return jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=target), abstract_tree)


def check_batch_size(batch_size: int, mesh: Mesh, what: str):
  if batch_size % mesh.size:
    raise ValueError(f'{what} {batch_size} does not split over {mesh.size} devices; '
                     f'use a multiple of {mesh.size}')


def shard_batch(batch: Dict[str, np.ndarray], mesh: Mesh, batch_spec: P = P('data')):
  """The global batch as arrays sharded over the mesh.

  With several processes, each process passes the same global batch (a pure
  function of seed, stream and step) and contributes only the rows that live on
  its own devices.
  """
  sharding = NamedSharding(mesh, batch_spec)
  if jax.process_count() == 1:
    return jax.device_put(batch, sharding)
  axis = list(batch_spec).index('data')

  def put(x):
    spans = [index[axis] for index in sharding.addressable_devices_indices_map(x.shape).values()]
    rows = slice(min(s.start or 0 for s in spans), max(x.shape[axis] if s.stop is None else s.stop for s in spans))
    return jax.make_array_from_process_local_data(sharding, x[(slice(None),) * axis + (rows,)], x.shape)

  return jax.tree_util.tree_map(put, batch)


# ----------------------------------------------------------------------------- several processes

COORDINATOR_ENV, NUM_PROCESSES_ENV, PROCESS_ID_ENV = 'KD_JAX_COORDINATOR', 'KD_JAX_NUM_PROCESSES', 'KD_JAX_PROCESS_ID'
DISTRIBUTED_ENV = 'KD_JAX_DISTRIBUTED'  # 'auto': JAX's own cluster detection (set by launch/tpu.py on every worker)


def initialize_distributed(environ=None, timeout: float = 300.0) -> bool:
  """Starts JAX's multi-process runtime when this run is one process of several; True if it did.

  Explicit: ``KD_JAX_COORDINATOR`` (host:port), ``KD_JAX_NUM_PROCESSES`` and
  ``KD_JAX_PROCESS_ID``, all three or none. Otherwise JAX's own detection
  (``jax.distributed.initialize()`` with no arguments, as big_vision and MaxText
  call it), used when ``KD_JAX_DISTRIBUTED=auto`` (launch/tpu.py sets it: a
  Cloud TPU VM slice is recognised through its metadata server, not through
  any variable), on GKE's ``TPU_WORKER_HOSTNAMES`` with several hosts, or in a
  SLURM job of several tasks (``SLURM_NTASKS`` > 1). On CPU, processes
  exchange collectives over gloo.

  While it waits for the other processes it says so every 10 s (which
  process, how many it waits for, at which coordinator); after ``timeout``
  seconds (``config.distributed_timeout``) it gives up with one line and exit
  status 1 — before JAX's own deadline, which aborts with a C++ stack trace.
  """
  env = os.environ if environ is None else environ
  explicit = {name: env.get(name, '') for name in (COORDINATOR_ENV, NUM_PROCESSES_ENV, PROCESS_ID_ENV)}
  if any(explicit.values()) and not all(explicit.values()):
    missing = [name for name, value in explicit.items() if not value]
    raise ValueError(f'multi-process run half-configured: set {", ".join(missing)} too (or none of '
                     f'{", ".join(explicit)})')
  if env.get(DISTRIBUTED_ENV, '') not in ('', 'auto'):
    raise ValueError(f'{DISTRIBUTED_ENV}={env[DISTRIBUTED_ENV]!r}: the only value is auto (JAX finds the cluster)')
  auto = (env.get(DISTRIBUTED_ENV) == 'auto' or len(env.get('TPU_WORKER_HOSTNAMES', '').split(',')) > 1
          or int(env.get('SLURM_NTASKS', '1') or 1) > 1)
  if not all(explicit.values()) and not auto:
    return False
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  if all(explicit.values()):
    who = (f'process {explicit[PROCESS_ID_ENV]} of {explicit[NUM_PROCESSES_ENV]} (the coordinator at '
           f'{explicit[COORDINATOR_ENV]})')
    connect = lambda: jax.distributed.initialize(
        explicit[COORDINATOR_ENV], num_processes=int(explicit[NUM_PROCESSES_ENV]),
        process_id=int(explicit[PROCESS_ID_ENV]), initialization_timeout=int(timeout) + 60)
  else:
    who = 'this process (coordinator and peers found by JAX\'s cluster detection)'
    connect = lambda: jax.distributed.initialize(initialization_timeout=int(timeout) + 60)
  with _Watchdog(who, timeout):
    connect()
  return True


class _Watchdog:
  """Says every 10 s that ``who`` still waits for its peers; after ``timeout`` s ends the process with one line
  (JAX's own deadline is set later, so its C++ abort never comes first)."""

  def __init__(self, who: str, timeout: float, every: float = 10.0):
    self.who, self.timeout, self.every = who, timeout, every
    self.done = threading.Event()

  def __enter__(self):
    threading.Thread(target=self._watch, daemon=True).start()
    return self

  def __exit__(self, *exc):
    self.done.set()
    return False

  def _watch(self):
    start = time.monotonic()
    while not self.done.wait(min(self.every, max(0.0, self.timeout - (time.monotonic() - start)))):
      waited = time.monotonic() - start
      if waited >= self.timeout:
        print(f'kd_jax: error: {self.who} waited {waited:.0f} s for the other processes of the job to join '
              '(config.distributed_timeout): check that every one was started with the same coordinator and process '
              'count, and that its port is reachable', file=sys.stderr, flush=True)
        os._exit(1)  # pylint: disable=protected-access  # the main thread is blocked inside JAX's C++ connect
      print(f'kd_jax: {self.who}: waiting for the other processes to join ({waited:.0f} s of '
            f'{self.timeout:.0f})', file=sys.stderr, flush=True)


def is_primary() -> bool:
  """Process 0 writes logs, metrics, reports and plots; every process takes part in checkpoints."""
  return jax.process_index() == 0


def barrier(name: str):
  """Waits until every process gets here (no-op for one process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def to_host(tree):
  """Numpy copies of a pytree of arrays, also of arrays spread over several processes (gathered)."""
  def get(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      if x.is_fully_replicated:
        return np.asarray(x.addressable_data(0))
      return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)
  return jax.tree_util.tree_map(get, tree)
