"""Training batches as a pure function of (seed, stream, step), for one run or a stack of instances.

Any dataset with ``len`` and ``batch(indices) -> dict`` works (each task's
in-memory split); one with a ``lengths`` attribute gets batches of similar
sequence lengths. One with ``resident() -> (arrays, decode)`` can also live on
the device, its batches gathered there (:meth:`Batches.resident`): ``arrays``
holds every example (e.g. images as uint8) and ``decode`` (jittable) turns
gathered rows into exactly what ``batch(indices)`` gives. A split whose batches
come in a few shapes (SVA's batches, trimmed to a length bucket) lists them as
``batch_variants`` (static: one compiled branch each), says which one a batch
takes with ``variant_of(indices)``, and decodes with ``decode(rows, variant)``.
"""
from typing import Dict

import jax
from jax.sharding import PartitionSpec as P
import numpy as np


class BatchOrder:
  """Batches as a pure function of (seed, stream, step): a fresh permutation every epoch, remainder dropped.

  With ``lengths`` (sequence data), each epoch's permutation is cut into
  chunks of ``SORT_CHUNK_BATCHES`` batches, each chunk is sorted by length and
  cut into batches, and the batches are shuffled: batches hold sequences of
  similar length, so little of each batch is padding.
  """
  SORT_CHUNK_BATCHES = 50

  def __init__(self, num_examples: int, batch_size: int, seed: int, stream: int, lengths=None):
    if num_examples < batch_size:
      raise ValueError(f'batch size {batch_size} exceeds the {num_examples} training examples')
    if lengths is not None and len(lengths) != num_examples:
      raise ValueError(f'{len(lengths)} lengths for {num_examples} examples')
    self.num_examples, self.batch_size, self.seed, self.stream = num_examples, batch_size, seed, stream
    self.lengths = lengths
    self.steps_per_epoch = num_examples // batch_size
    self._epoch, self._perm = None, None

  def indices(self, step: int) -> np.ndarray:
    epoch, i = divmod(step, self.steps_per_epoch)
    if epoch != self._epoch:
      self._epoch = epoch
      rng = np.random.default_rng([self.seed, self.stream, epoch])
      self._perm = rng.permutation(self.num_examples)[:self.steps_per_epoch * self.batch_size]
      if self.lengths is not None:
        chunk = self.SORT_CHUNK_BATCHES * self.batch_size
        self._perm = np.concatenate([part[np.argsort(self.lengths[part], kind='stable')]
                                     for part in np.split(self._perm, range(chunk, len(self._perm), chunk))])
        batches = self._perm.reshape(self.steps_per_epoch, self.batch_size)
        self._perm = batches[rng.permutation(self.steps_per_epoch)].reshape(-1)
    return self._perm[i * self.batch_size:(i + 1) * self.batch_size]


class Batches:
  """Training batches as a function of the step, for one run or a stack of instances.

  ``orders`` holds one :class:`BatchOrder` per instance. With ``stacked``, each
  array gets a leading instance axis ([N, B, ...], sharded on B); otherwise
  there must be one order and batches are [B, ...]. ``teacher_logits`` (one
  row per training example; [N, num_examples, C] when stacked) adds each
  example's cached teacher logits to its batch.
  """

  def __init__(self, split, orders, stacked: bool = False, teacher_logits=None):
    if not stacked and len(orders) != 1:
      raise ValueError(f'an unstacked run has one batch order, got {len(orders)}')
    self.split, self.orders, self.stacked, self.teacher_logits = split, list(orders), stacked, teacher_logits
    self.steps_per_epoch = orders[0].steps_per_epoch
    self.batch_size = orders[0].batch_size
    self.examples_per_step = self.batch_size * len(self.orders)
    self.partition_spec = P(None, 'data') if stacked else P('data')
    self.variants = tuple(getattr(split, 'batch_variants', (None,)))
    if stacked and len(self.variants) > 1:  # one program runs every instance's step: one shape per step
      raise ValueError(f'stacked instances need batches of one shape, but a {type(split).__name__} has '
                       f'{len(self.variants)}; train the seeds one after another')

  def indices(self, step: int) -> np.ndarray:
    """The example indices of the batch at ``step``: [B], or [N, B] when stacked."""
    idx = np.stack([order.indices(step) for order in self.orders])
    return idx if self.stacked else idx[0]

  def variant(self, step: int) -> int:
    """Which of :attr:`variants` (the split's batch shapes) the batch at ``step`` takes."""
    return 0 if len(self.variants) == 1 else self.split.variant_of(self.indices(step))

  @property
  def can_be_resident(self) -> bool:
    return hasattr(self.split, 'resident')

  def resident(self):
    """``(arrays, gather)``: every training example (and its cached teacher logits) as host arrays to place on the
    device, and ``gather(arrays, idx, variant)`` (jittable), the batch at indices ``idx`` ([B] or [N, B]) from them,
    in the shape ``variant`` (one of :attr:`variants`, static)."""
    if not self.can_be_resident:
      raise ValueError(f'config.steps_per_dispatch > 0 keeps the training set on the device, but a '
                       f'{type(self.split).__name__} cannot live there (it has no resident() method); set '
                       'config.steps_per_dispatch=0 for host batches')
    arrays, decode = self.split.resident()
    if self.teacher_logits is not None:
      arrays = {**arrays, 'teacher_logits': np.asarray(self.teacher_logits)}
    stacked = self.stacked

    def gather(resident, idx, variant=None) -> Dict[str, jax.Array]:
      rows = {key: value[idx] for key, value in resident.items() if key != 'teacher_logits'}
      batch = decode(rows) if variant is None else decode(rows, variant)
      if 'teacher_logits' in resident:  # stacked: each instance its own teacher's logits
        logits = resident['teacher_logits']
        batch['teacher_logits'] = jax.vmap(lambda t, i: t[i])(logits, idx) if stacked else logits[idx]
      return batch

    return arrays, gather

  def __call__(self, step: int) -> Dict[str, np.ndarray]:
    per_instance = []
    for k, order in enumerate(self.orders):
      idx = order.indices(step)
      batch = self.split.batch(idx)
      if self.teacher_logits is not None:
        batch['teacher_logits'] = (self.teacher_logits[k] if self.stacked else self.teacher_logits)[idx]
      per_instance.append(batch)
    if not self.stacked:
      return per_instance[0]
    return {key: np.stack([b[key] for b in per_instance]) for key in per_instance[0]}
