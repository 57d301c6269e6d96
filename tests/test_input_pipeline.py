import chex
import numpy as np

from kd_jax import input_pipeline


def test_batch_order_is_a_function_of_seed_and_step():
  order = input_pipeline.BatchOrder(100, 32, seed=3, stream=0)
  assert order.steps_per_epoch == 3
  epoch0 = np.concatenate([order.indices(s) for s in range(3)])
  assert len(set(epoch0)) == 96  # no repeats inside an epoch
  again = input_pipeline.BatchOrder(100, 32, seed=3, stream=0)
  chex.assert_trees_all_equal(again.indices(4), order.indices(4))  # random access, same answer
  assert not np.array_equal(order.indices(3), order.indices(0))  # a new permutation each epoch
  assert not np.array_equal(input_pipeline.BatchOrder(100, 32, seed=4, stream=0).indices(0), order.indices(0))


def test_batch_order_groups_similar_lengths():
  lengths = np.random.default_rng(0).integers(1, 50, size=1000)
  order = input_pipeline.BatchOrder(1000, 10, seed=0, stream=0, lengths=lengths)
  epoch = np.concatenate([order.indices(i) for i in range(order.steps_per_epoch)])
  assert sorted(epoch) == list(range(1000))  # still every example once per epoch
  spread = np.mean([np.ptp(lengths[order.indices(i)]) for i in range(order.steps_per_epoch)])
  plain = input_pipeline.BatchOrder(1000, 10, seed=0, stream=0)
  plain_spread = np.mean([np.ptp(lengths[plain.indices(i)]) for i in range(plain.steps_per_epoch)])
  assert spread < plain_spread / 5
  again = input_pipeline.BatchOrder(1000, 10, seed=0, stream=0, lengths=lengths)
  np.testing.assert_array_equal(again.indices(57), order.indices(57))  # a function of (seed, stream, step)


def test_stacked_batches_carry_each_instances_own_order_and_cached_logits():
  split = _Range(40)
  orders = [input_pipeline.BatchOrder(40, 8, seed, stream=1) for seed in (0, 1)]
  logits = np.arange(2 * 40 * 3, dtype=np.float32).reshape(2, 40, 3)
  batch = input_pipeline.Batches(split, orders, stacked=True, teacher_logits=logits)(5)
  chex.assert_shape(batch['inputs'], (2, 8))
  for k in range(2):
    idx = orders[k].indices(5)
    np.testing.assert_array_equal(batch['inputs'][k], idx)
    np.testing.assert_array_equal(batch['teacher_logits'][k], logits[k, idx])
  assert not np.array_equal(batch['inputs'][0], batch['inputs'][1])


class _Range:
  """A dataset whose example i is the number i."""

  def __init__(self, n):
    self.n = n

  def __len__(self):
    return self.n

  def batch(self, idx):
    return {'inputs': np.asarray(idx), 'label': np.zeros(len(idx), np.int32)}
