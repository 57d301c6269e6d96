import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from kd_jax import data as data_lib
from kd_jax import losses
from kd_jax import models
from kd_jax import training

SMALL_CNN = dict(filters=(8, 8, 16), maxout_units=(8, 8, 4))
OPT = ml_collections.ConfigDict(dict(optimizer='adam', learning_rate=1e-3, schedule='cosine', clip_norm=1.0))


def _split(n=64, seed=0):
  rng = np.random.default_rng(seed)
  return data_lib.Split(rng.uniform(size=(n, 28, 28, 1)).astype(np.float32), rng.integers(0, 10, n).astype(np.int32))


def _kd_setup(teacher_train_mode=False, optimizer='adam'):
  teacher = models.create_model('cnn', **SMALL_CNN)
  teacher_variables = training.init_variables(teacher, jax.random.PRNGKey(7))
  student = models.create_model('mlp', hidden_sizes=(32, 16))
  tx = training.make_optimizer(ml_collections.ConfigDict({**OPT.to_dict(), 'optimizer': optimizer}), 8)
  loss_fn = losses.get_loss('distillation', temperature=2.0, alpha=0.5)
  step = training.make_train_step(student, tx, loss_fn, teacher, teacher_train_mode=teacher_train_mode)
  return student, tx, step, teacher_variables


def _run_steps(step, state, teacher_variables, mesh, split, num_steps, batch_size=16):
  order = training.BatchOrder(len(split), batch_size, seed=0, stream=1)
  step_fn = training.jit_data_parallel(step, mesh)
  state = jax.device_put(state, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
  losses_seen = []
  for i in range(num_steps):
    idx = order.indices(i)
    state, metrics = step_fn(state, training.shard_batch({'inputs': split.images[idx], 'label': split.labels[idx]},
                                                         mesh), teacher_variables)
    losses_seen.append(float(metrics['loss']))
  return state, np.array(losses_seen)


@pytest.mark.parametrize('optimizer,teacher_train_mode', [('sgd', False), ('sgd', True), ('adam', False)])
def test_one_device_and_eight_devices_give_the_same_run(optimizer, teacher_train_mode):
  assert jax.device_count() == 8, 'conftest sets 8 virtual CPU devices'
  student, tx, step, teacher_variables = _kd_setup(teacher_train_mode, optimizer)
  # Host copy: each run donates the device state it is given.
  state = jax.tree_util.tree_map(np.array, training.init_state(student, tx, jax.random.PRNGKey(0)))
  split = _split()
  one, losses_one = _run_steps(step, state, teacher_variables, training.data_mesh(jax.devices()[:1]), split, 6)
  eight, losses_eight = _run_steps(step, state, teacher_variables, training.data_mesh(jax.devices()), split, 6)
  assert losses_one[-1] != losses_one[0]  # it trained
  np.testing.assert_allclose(losses_one, losses_eight, rtol=1e-5, atol=1e-6)
  if optimizer == 'sgd':
    # Adam divides by the gradient's running RMS, so a weight whose gradient is ~0 (a unit dead on the
    # batch) turns reduction-order rounding into a visible step: compare its weights only via the losses.
    chex.assert_trees_all_close(one.params, eight.params, rtol=1e-4, atol=1e-6)
    chex.assert_trees_all_close(one.batch_stats, eight.batch_stats, rtol=1e-4, atol=1e-6)
  assert len(eight.params['Dense_0']['kernel'].sharding.device_set) == 8


def test_step_leaves_teacher_alone_and_reports_agreement():
  student, tx, step, teacher_variables = _kd_setup()
  state = training.init_state(student, tx, jax.random.PRNGKey(0))
  split = _split(16)
  before = jax.tree_util.tree_map(np.array, teacher_variables)
  new_state, metrics = jax.jit(step)(state, {'inputs': split.images, 'label': split.labels}, teacher_variables)
  chex.assert_trees_all_equal(teacher_variables, before)
  assert int(new_state.step) == 1 and 0.0 <= float(metrics['teacher_agreement']) <= 1.0
  chex.assert_tree_all_finite(new_state.params)
  assert not np.allclose(new_state.params['Dense_0']['kernel'], state.params['Dense_0']['kernel'])


def test_batch_order_is_a_function_of_seed_and_step():
  order = training.BatchOrder(100, 32, seed=3, stream=0)
  assert order.steps_per_epoch == 3
  epoch0 = np.concatenate([order.indices(s) for s in range(3)])
  assert len(set(epoch0)) == 96  # no repeats inside an epoch
  again = training.BatchOrder(100, 32, seed=3, stream=0)
  chex.assert_trees_all_equal(again.indices(4), order.indices(4))  # random access, same answer
  assert not np.array_equal(order.indices(3), order.indices(0))  # a new permutation each epoch
  assert not np.array_equal(training.BatchOrder(100, 32, seed=4, stream=0).indices(0), order.indices(0))


def test_fit_resumed_from_a_midway_state_matches_an_unbroken_run():
  student, tx, step, teacher_variables = _kd_setup()
  mesh = training.data_mesh(jax.devices()[:2])
  step_fn = training.jit_data_parallel(step, mesh)
  split = _split()
  batches = lambda: training.Batches(split, [training.BatchOrder(len(split), 16, seed=0, stream=1)])
  fit = lambda state, n: training.fit('student', step_fn, state, batches(), num_steps=n, mesh=mesh,
                                      teacher_variables=teacher_variables, log_every=2)
  init = lambda: training.init_state(student, tx, jax.random.PRNGKey(0))
  unbroken = fit(init(), 6)
  midway = jax.tree_util.tree_map(np.array, fit(init(), 3))  # as if restored from a checkpoint at step 3
  resumed = fit(midway, 6)
  chex.assert_trees_all_equal(resumed, unbroken)


def test_non_finite_loss_stops_training():
  student, tx, step, teacher_variables = _kd_setup()
  mesh = training.data_mesh(jax.devices()[:1])
  split = _split()
  split.images[:] = np.nan
  with pytest.raises(FloatingPointError, match='non-finite loss.*config.student.learning_rate'):
    training.fit('student', training.jit_data_parallel(step, mesh),
                 training.init_state(student, tx, jax.random.PRNGKey(0)),
                 training.Batches(split, [training.BatchOrder(64, 16, 0, 1)]), num_steps=2, mesh=mesh,
                 teacher_variables=teacher_variables, log_every=1)


def test_optimizer_settings():
  for schedule in ('constant', 'cosine', 'exponential'):
    cfg = ml_collections.ConfigDict(dict(optimizer='radam', learning_rate=1e-3, schedule=schedule,
                                         decay_steps=10, decay_rate=0.5, clip_norm=0.0))
    assert training.make_schedule(cfg, 100)(0) == pytest.approx(1e-3)
    training.make_optimizer(cfg, 100)
  cfg.schedule = 'cosine'
  assert training.make_schedule(cfg, 100)(100) == pytest.approx(0.0)
  with pytest.raises(ValueError, match="unknown optimizer 'adamw2'"):
    training.make_optimizer(ml_collections.ConfigDict(dict(optimizer='adamw2', clip_norm=1.0)), 10)
  with pytest.raises(ValueError, match="unknown learning-rate schedule 'linear'"):
    training.make_schedule(ml_collections.ConfigDict(dict(schedule='linear', learning_rate=1.0)), 10)


def test_batch_that_does_not_split_over_devices():
  with pytest.raises(ValueError, match='does not split over 8 devices'):
    training.check_batch_size(100, training.data_mesh(), 'config.student.batch_size')


def test_predict_pads_the_last_batch():
  model = models.create_model('mlp', hidden_sizes=(16,))
  variables = training.init_variables(model, jax.random.PRNGKey(0))
  images = _split(30).images
  predict = training.make_predict_fn(model, training.data_mesh(), batch_size=16)
  logits = predict(variables, images)
  chex.assert_shape(logits, (30, 10))
  chex.assert_trees_all_close(logits, np.asarray(model.apply(variables, jnp.asarray(images))), rtol=1e-5, atol=1e-6)
