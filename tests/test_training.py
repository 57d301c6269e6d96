import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from conftest import real_digits
from kd_jax import input_pipeline
from kd_jax import losses
from kd_jax import sharding
from kd_jax import training
from kd_jax.mnist import data as data_lib
from kd_jax.mnist import models
from kd_jax.sva import configs as sva_configs
from kd_jax.sva import data as sva_data
from kd_jax.sva import models as sva_models

SMALL_CNN = dict(filters=(8, 8, 16), maxout_units=(8, 8, 4))
OPT = ml_collections.ConfigDict(dict(optimizer='adam', learning_rate=1e-3, schedule='cosine', clip_norm=1.0))
KD = dict(temperature=2.0, alpha=0.5, scale='hinton')
IMAGE = jnp.zeros((1, 28, 28, 1))  # fixes the models' shapes


def _split(n=64, seed=0):
  rng = np.random.default_rng(seed)
  return data_lib.Split(rng.uniform(size=(n, 28, 28, 1)).astype(np.float32), rng.integers(0, 10, n).astype(np.int32))


def _kd_setup(teacher_train_mode=False, optimizer='adam'):
  teacher = models.create_model('cnn', **SMALL_CNN)
  teacher_variables = training.init_variables(teacher, jax.random.PRNGKey(7), IMAGE)
  student = models.create_model('mlp', hidden_sizes=(32, 16))
  tx = training.make_optimizer(ml_collections.ConfigDict({**OPT.to_dict(), 'optimizer': optimizer}), 8)
  loss_fn = losses.get_loss('distillation', KD)
  step = training.make_train_step(student, tx, loss_fn, teacher,
                                  training.StepOptions(teacher_train_mode=teacher_train_mode))
  return student, tx, step, teacher_variables


def _run_steps(step, state, teacher_variables, mesh, split, num_steps, batch_size=16):
  order = input_pipeline.BatchOrder(len(split), batch_size, seed=0, stream=1)
  step_fn = sharding.jit_data_parallel(step, mesh)
  state = jax.device_put(state, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
  losses_seen = []
  for i in range(num_steps):
    idx = order.indices(i)
    state, metrics = step_fn(state, sharding.shard_batch({'inputs': split.images[idx], 'label': split.labels[idx]},
                                                         mesh), teacher_variables)
    losses_seen.append(float(metrics['loss']))
  return state, np.array(losses_seen)


@pytest.mark.parametrize('optimizer,teacher_train_mode', [('sgd', False), ('sgd', True), ('adam', False)])
def test_one_device_and_eight_devices_give_the_same_run(optimizer, teacher_train_mode):
  assert jax.device_count() == 8, 'conftest sets 8 virtual CPU devices'
  student, tx, step, teacher_variables = _kd_setup(teacher_train_mode, optimizer)
  # Host copy: each run donates the device state it is given.
  state = jax.tree_util.tree_map(np.array, training.init_state(student, tx, jax.random.PRNGKey(0), IMAGE))
  split = _split()
  one, losses_one = _run_steps(step, state, teacher_variables, sharding.data_mesh(jax.devices()[:1]), split, 6)
  eight, losses_eight = _run_steps(step, state, teacher_variables, sharding.data_mesh(jax.devices()), split, 6)
  assert losses_one[-1] != losses_one[0]  # it trained
  np.testing.assert_allclose(losses_one, losses_eight, rtol=1e-5, atol=1e-6)
  kernels = lambda state: {layer: p['kernel'] for layer, p in state.params.items() if 'kernel' in p}
  chex.assert_trees_all_close(kernels(one), kernels(eight), rtol=1e-4, atol=1e-6)
  if optimizer == 'sgd':
    chex.assert_trees_all_close(one.params, eight.params, rtol=1e-4, atol=1e-6)
    chex.assert_trees_all_close(one.batch_stats, eight.batch_stats, rtol=1e-4, atol=1e-6)
  else:
    # The biases of units that are active on the whole batch feed BatchNorm, which cancels them: their true
    # gradient is 0 and Adam scales its device-dependent rounding into steps of ~1e-3 (seen), which reach the
    # eval-mode logits only through BatchNorm's running means (~5e-4 here): the same predictions.
    test = _split(32, seed=1).images
    logits = [training.make_predict_fn(student, mesh, 32)(s.variables, test)
              for s, mesh in ((one, sharding.data_mesh(jax.devices()[:1])), (eight, sharding.data_mesh()))]
    np.testing.assert_allclose(logits[0], logits[1], atol=5e-3)
    np.testing.assert_array_equal(logits[0].argmax(-1), logits[1].argmax(-1))
  assert len(eight.params['Dense_0']['kernel'].sharding.device_set) == 8


def test_the_cnn_trained_with_adam_is_the_same_on_one_and_eight_devices():
  # The case that used to differ: Adam turned device-dependent rounding in a BatchNorm-cancelled bias into steps.
  model = models.create_model('cnn', filters=(8, 8, 16), maxout_units=(8, 8, 4), bn_momentum=0.8)
  tx = training.make_optimizer(ml_collections.ConfigDict(dict(optimizer='adam', learning_rate=1e-2,
                                                              schedule='constant', clip_norm=1.0)), 8)
  step = training.make_train_step(model, tx, losses.get_loss('cross_entropy'))
  state = jax.tree_util.tree_map(np.array, training.init_state(model, tx, jax.random.PRNGKey(0), IMAGE))
  images, labels = real_digits()
  split = data_lib.Split((images[:128, ..., None] / 255.0).astype(np.float32), labels[:128].astype(np.int32))
  one, _ = _run_steps(step, state, None, sharding.data_mesh(jax.devices()[:1]), split, 8)
  eight, _ = _run_steps(step, state, None, sharding.data_mesh(jax.devices()), split, 8)
  assert 'bias' not in one.params['Conv_0'] and 'bias' in one.params['Conv_2']  # group sizes 1, 1, 4
  chex.assert_trees_all_close(one.params, eight.params, rtol=1e-4, atol=1e-5)
  chex.assert_trees_all_close(one.batch_stats, eight.batch_stats, rtol=1e-4, atol=1e-5)
  test = data_lib.Split((images[128:192, ..., None] / 255.0).astype(np.float32), labels[128:192].astype(np.int32))
  logits = [training.make_predict_fn(model, mesh, 32)(s.variables, test.images)
            for s, mesh in ((one, sharding.data_mesh(jax.devices()[:1])), (eight, sharding.data_mesh()))]
  np.testing.assert_allclose(logits[0], logits[1], rtol=1e-4, atol=1e-4)
  assert np.array_equal(logits[0].argmax(-1), logits[1].argmax(-1))


@pytest.mark.parametrize('teacher_train_mode', [False, True])
def test_no_gradient_reaches_the_teacher(teacher_train_mode):
  student, tx, step, teacher_variables = _kd_setup(teacher_train_mode)
  state = training.init_state(student, tx, jax.random.PRNGKey(0), IMAGE)
  split = _split(16)
  batch = {'inputs': split.images, 'label': split.labels}
  loss_wrt_teacher = jax.jit(lambda tv: step(state, batch, tv)[1]['loss'])
  grads = jax.jit(jax.grad(loss_wrt_teacher))(teacher_variables)
  chex.assert_trees_all_equal(grads, jax.tree_util.tree_map(jnp.zeros_like, teacher_variables))
  # The loss does depend on the teacher: only the step's stop_gradient makes that gradient 0.
  other_teacher = training.init_variables(models.create_model('cnn', **SMALL_CNN), jax.random.PRNGKey(8), IMAGE)
  assert float(loss_wrt_teacher(other_teacher)) != float(loss_wrt_teacher(teacher_variables))
  new_state, _ = jax.jit(step)(state, batch, teacher_variables)
  assert int(new_state.step) == 1
  chex.assert_tree_all_finite(new_state.params)
  assert not np.allclose(new_state.params['Dense_0']['kernel'], state.params['Dense_0']['kernel'])


def test_teacher_agreement_counts_agreement_with_the_teacher_not_the_labels():
  student = models.create_model('mlp', hidden_sizes=(32, 16))
  tx = training.make_optimizer(OPT, 8)
  step = jax.jit(training.make_train_step(student, tx, losses.get_loss('distillation', KD),
                                              options=training.StepOptions(output_logits=True)))
  split = _split(16)
  state = training.init_state(student, tx, jax.random.PRNGKey(0), IMAGE)
  batch = lambda teacher_classes: {'inputs': split.images, 'label': split.labels,
                                   'teacher_logits': 10.0 * jax.nn.one_hot(teacher_classes, 10)}
  _, gold = step(state, batch(split.labels), None)  # a teacher that is the labels: agreement is the accuracy
  assert float(gold['teacher_agreement']) == float(gold['accuracy'])
  predicted = np.asarray(gold['logits']).argmax(-1)
  assert float(gold['accuracy']) == np.mean(predicted == split.labels) < 1.0  # the untrained student errs
  # A teacher that disagrees with the labels wherever the student does: the student agrees with it everywhere.
  _, own = step(state, batch(predicted), None)
  np.testing.assert_array_equal(np.asarray(own['logits']).argmax(-1), predicted)  # same state and key
  assert float(own['teacher_agreement']) == 1.0 and float(own['accuracy']) == float(gold['accuracy'])


@pytest.mark.parametrize('steps_per_dispatch', [0, 4])
def test_fit_resumed_from_a_midway_state_matches_an_unbroken_run(steps_per_dispatch):
  student, tx, step, teacher_variables = _kd_setup()
  mesh = sharding.data_mesh(jax.devices()[:2])
  split = _split()
  batches = lambda: input_pipeline.Batches(split, [input_pipeline.BatchOrder(len(split), 16, seed=0, stream=1)])
  fit = lambda state, n: training.fit('student', step, state, batches(), teacher_variables, training.Loop(
      num_steps=n, mesh=mesh, steps_per_dispatch=steps_per_dispatch, log_every=5))
  init = lambda: training.init_state(student, tx, jax.random.PRNGKey(0), IMAGE)
  unbroken = fit(init(), 11)
  midway = jax.tree_util.tree_map(np.array, fit(init(), 3))  # as if restored from a checkpoint at step 3
  resumed = fit(midway, 11)
  chex.assert_trees_all_equal(resumed, unbroken)


def _real_split(n=96):
  images, labels = real_digits()
  return data_lib.Split((images[:n, ..., None] / 255.0).astype(np.float32), labels[:n].astype(np.int32))


# Each setting both ways in two runs (the four combinations cost about a minute more of CI): one run with the teacher
# in the step, and vmapped instances gathering their cached logits on the device.
@pytest.mark.parametrize('stacked,cached', [(False, False), (True, True)])
def test_steps_on_the_device_equal_steps_from_host_batches(stacked, cached):
  """K steps per dispatch, data (uint8) and cached logits on the device: the same states, bit for bit, and the same
  logged metrics as one dispatch per host batch; one run or vmapped instances, teacher in the step or cached."""
  student, tx, step, teacher_variables = _kd_setup()
  if cached:
    step = training.make_train_step(student, tx, losses.get_loss('distillation', KD))
  mesh = sharding.data_mesh(jax.devices()[:2])
  split = _real_split()
  assert split.resident()[0]['inputs'].dtype == np.uint8  # real digits are k/255: kept as bytes on the device
  seeds = [0, 1] if stacked else [0]
  logits = np.random.default_rng(3).normal(size=(len(seeds), len(split), 10)).astype(np.float32)
  teacher_logits = (logits if stacked else logits[0]) if cached else None
  if stacked:
    step = jax.vmap(step, in_axes=(0, 0, None))
  init = lambda: jax.tree_util.tree_map(np.array, jax.vmap(
      lambda k: training.init_state(student, tx, k, IMAGE))(jax.random.split(jax.random.PRNGKey(0), len(seeds))))
  if not stacked:
    init = lambda: training.init_state(student, tx, jax.random.PRNGKey(0), IMAGE)

  def fit(steps_per_dispatch):
    batches = input_pipeline.Batches(split, [input_pipeline.BatchOrder(len(split), 16, s, 1) for s in seeds],
                                     stacked=stacked, teacher_logits=teacher_logits)
    records = []
    writer = type('Writer', (), {'write': lambda self, phase, step, scalars: records.append((step, scalars))})()
    state = training.fit('student', step, init(), batches, None if cached else teacher_variables, training.Loop(
        num_steps=13, mesh=mesh, steps_per_dispatch=steps_per_dispatch, log_every=5, writer=writer))
    return state, [(s, {k: v for k, v in m.items() if k != 'examples_per_sec'}) for s, m in records]

  host_state, host_records = fit(0)
  device_state, device_records = fit(4)
  chex.assert_trees_all_equal(device_state, host_state)
  assert [s for s, _ in host_records] == [5, 10, 13]
  assert device_records == host_records
  assert int(np.asarray(host_state.step).reshape(-1)[0]) == 13


def _sva_split(objective):
  """Synthetic agreement sentences encoded as SVA trains on them, batches trimmed to a multiple of 8 tokens."""
  sentences = sva_data.synthetic_grammar(96, seed=0, max_intervening=3)
  vocab = sva_data.Vocab.build(sentences.sentences)
  if objective == 'lm':
    return sva_data.encode_lm(sentences, vocab, length_bucket=8), len(vocab)
  return sva_data.encode_classification(sva_data.lm_to_classification(sentences), vocab, length_bucket=8), len(vocab)


@pytest.mark.parametrize('model_name,objective', [('lstm', 'classify'), ('transformer_seq', 'lm')])
def test_steps_on_the_device_equal_host_steps_for_batches_of_several_shapes(model_name, objective):
  """SVA's batches, trimmed to their length bucket: on the device each step runs the branch of its own length."""
  split, vocab_size = _sva_split(objective)
  batches = lambda: input_pipeline.Batches(split, [input_pipeline.BatchOrder(len(split), 8, 0, 1, split.lengths)])
  order = batches()
  assert order.variants == tuple(range(8, split.tokens.shape[1] + 1, 8))
  assert len({order.variant(s) for s in range(12)}) > 1  # the run below crosses several branches
  kwargs = dict(sva_configs.SMOKE_MODEL_KWARGS[model_name.replace('_seq', '')])
  model = sva_models.create_model(model_name, vocab_size=vocab_size, objective=objective, **kwargs)
  tx = training.make_optimizer(OPT, 12)
  step = training.make_train_step(model, tx, losses.get_loss('cross_entropy'))
  mesh = sharding.data_mesh(jax.devices()[:2])
  fit = lambda k: training.fit('sva', step, training.init_state(model, tx, jax.random.PRNGKey(0), split.tokens[:1]),
                               batches(), None, training.Loop(num_steps=12, mesh=mesh, steps_per_dispatch=k,
                                                              log_every=6))
  # 6 steps a dispatch, the log interval: one scan length to compile (each holds every length's branch).
  host, device = fit(0), fit(6)
  chex.assert_trees_all_equal(device, host)  # the same steps at the same shapes, bit for bit
  assert int(device.step) == 12


def test_stacked_instances_need_batches_of_one_shape():
  split, _ = _sva_split('classify')
  with pytest.raises(ValueError, match='stacked instances need batches of one shape.*SvaSplit has [0-9]+'):
    input_pipeline.Batches(split, [input_pipeline.BatchOrder(len(split), 8, s, 1) for s in (0, 1)], stacked=True)


def test_auto_steps_per_dispatch(monkeypatch):
  batches = lambda split: input_pipeline.Batches(split, [input_pipeline.BatchOrder(len(split), 16, 0, 1)])
  mnist, host_only = batches(_split(32)), batches(_HostOnly())
  assert training.resolve_steps_per_dispatch(-1, mnist) == 0  # CPU: one step per dispatch
  assert training.resolve_steps_per_dispatch(7, host_only) == 7  # explicit values are kept
  accelerator = type('Device', (), {'platform': 'gpu'})()
  monkeypatch.setattr(jax, 'devices', lambda: [accelerator])
  assert training.resolve_steps_per_dispatch(-1, mnist) == training.AUTO_STEPS_PER_DISPATCH
  assert training.resolve_steps_per_dispatch(-1, host_only) == 0  # its data cannot live on the device


def test_compiler_options_are_the_trained_models_and_reach_xla(caplog):
  cnn, mlp = models.create_model('cnn', **SMALL_CNN), models.create_model('mlp', hidden_sizes=(32, 16))
  cnn_options = models.CNN.training_compiler_options['cpu']
  assert cnn_options and training.compiler_options(cnn) == cnn_options  # this suite runs on CPU
  assert training.compiler_options(mlp) == {}
  assert training.compiler_options(mlp, cnn) == cnn_options
  unknown = type('Model', (), {'training_compiler_options': {'cpu': {'xla_cpu_no_such_option': True}}})()
  assert training.compiler_options(unknown, cnn) == cnn_options  # left out, with a warning naming it
  assert 'xla_cpu_no_such_option' in caplog.text

  cnn = models.create_model('cnn', filters=(32, 32, 64), maxout_units=(32, 32, 16))  # wide enough for YNNPACK
  tx = training.make_optimizer(OPT, 8)
  step = training.make_train_step(cnn, tx, losses.get_loss('cross_entropy'))
  state = training.init_state(cnn, tx, jax.random.PRNGKey(0), IMAGE)
  batches = input_pipeline.Batches(_split(32), [input_pipeline.BatchOrder(32, 16, 0, 1)])
  mesh = sharding.data_mesh(jax.devices()[:1])

  def ynnpack_ops(options):  # the ops of the compiled step that YNNPACK runs, by their source op's name
    text = training.compile_loop(step, batches, mesh, 0, options)[0].lower(state, batches(0), None).compile().as_text()
    return [line.split('op_name="')[1].split('"')[0] for line in text.splitlines()
            if line.lstrip().startswith('%ynn_fusion') and 'op_name="' in line]

  if not any('conv_general_dilated' in op for op in ynnpack_ops(None)):
    pytest.skip('this XLA does not run convolutions in YNNPACK by default: nothing for the option to turn off')
  kept = ynnpack_ops(training.compiler_options(cnn))
  assert not any('conv_general_dilated' in op for op in kept)  # convolutions: Eigen's
  assert any('reduce_sum' in op for op in kept)  # reductions stay YNNPACK's (tests/mnist/test_models.py says why)


class _HostOnly:
  """A split without resident(): its batches can only come from the host."""

  def __len__(self):
    return 32

  def batch(self, idx):
    return _split(32).batch(idx)


def test_a_split_that_cannot_live_on_the_device_is_refused_by_name():
  student, tx, step, teacher_variables = _kd_setup()
  with pytest.raises(ValueError, match='config.steps_per_dispatch > 0.*_HostOnly.*steps_per_dispatch=0'):
    training.fit('student', step, training.init_state(student, tx, jax.random.PRNGKey(0), IMAGE),
                 input_pipeline.Batches(_HostOnly(), [input_pipeline.BatchOrder(32, 16, 0, 1)]), teacher_variables,
                 training.Loop(num_steps=2, mesh=sharding.data_mesh(jax.devices()[:1]), steps_per_dispatch=2))


def test_non_finite_loss_stops_training():
  student, tx, step, teacher_variables = _kd_setup()
  mesh = sharding.data_mesh(jax.devices()[:1])
  split = _split()
  split.images[:] = np.nan
  with pytest.raises(FloatingPointError, match='non-finite loss.*config.student.learning_rate'):
    training.fit('student', step, training.init_state(student, tx, jax.random.PRNGKey(0), IMAGE),
                 input_pipeline.Batches(split, [input_pipeline.BatchOrder(64, 16, 0, 1)]), teacher_variables,
                 training.Loop(num_steps=2, mesh=mesh, log_every=1))


def test_train_mode_predictions_are_the_teacher_in_training_mode():
  model = models.create_model('mlp', hidden_sizes=(32, 16), dropout_rate=0.5)
  variables = training.init_variables(model, jax.random.PRNGKey(0), IMAGE)
  images = _split(40).images
  mesh = sharding.data_mesh(jax.devices()[:1])
  eval_mode = training.make_predict_fn(model, mesh, 16)(variables, images)
  train_mode = training.make_predict_fn(model, mesh, 16, train_mode=True)
  np.testing.assert_array_equal(train_mode(variables, images), train_mode(variables, images))  # fixed keys
  assert np.abs(train_mode(variables, images) - eval_mode).max() > 1e-3  # dropout and batch statistics on
  # Batch i is the model in training mode with key fold_in(PRNGKey(0), i).
  expected, _ = model.apply(variables, images[16:32], train=True, mutable=['batch_stats'],
                            rngs={'dropout': jax.random.fold_in(jax.random.PRNGKey(0), 1)})
  np.testing.assert_allclose(train_mode(variables, images)[16:32], expected, rtol=1e-5, atol=1e-5)


def test_l2_adds_the_gradient_of_lambda_w_squared_on_kernels_only():
  params = {'Dense_0': {'kernel': jnp.full((3, 2), 2.0), 'bias': jnp.full((2,), 5.0)}}
  cfg = ml_collections.ConfigDict(dict(optimizer='sgd', learning_rate=0.1, schedule='constant', clip_norm=0.0,
                                       l2=1e-2))
  tx = training.make_optimizer(cfg, 10)
  zero_grads = jax.tree_util.tree_map(jnp.zeros_like, params)
  updates, _ = tx.update(zero_grads, tx.init(params), params)
  # d/dw (λ·w²) = 2λw = 0.04 for the kernel, times −lr; biases are not penalised (as Keras' kernel_regularizer).
  np.testing.assert_allclose(updates['Dense_0']['kernel'], -0.1 * 2 * 1e-2 * 2.0, rtol=1e-6)
  np.testing.assert_array_equal(updates['Dense_0']['bias'], 0.0)
  cfg.l2 = 0.0
  tx = training.make_optimizer(cfg, 10)
  updates, _ = tx.update(zero_grads, tx.init(params), params)
  np.testing.assert_array_equal(updates['Dense_0']['kernel'], 0.0)


def test_l1_and_l2_together_are_the_gradient_of_keras_l1_l2_on_kernels():
  params = {'Dense_0': {'kernel': jnp.array([[2.0, -3.0], [0.5, -0.25]]), 'bias': jnp.array([5.0, -5.0])},
            'Conv_0': {'kernel': jnp.linspace(-1.0, 1.0, 12).reshape(1, 2, 2, 3) + 0.05}}
  cfg = ml_collections.ConfigDict(dict(optimizer='sgd', learning_rate=0.1, schedule='constant', clip_norm=0.0,
                                       l1=1e-2, l2=3e-3))
  tx = training.make_optimizer(cfg, 10)
  updates, _ = tx.update(jax.tree_util.tree_map(jnp.zeros_like, params), tx.init(params), params)
  # Keras' l1_l2(l1, l2) penalty, summed over the kernels only, differentiated independently.
  penalty = lambda p: sum(1e-2 * jnp.abs(k).sum() + 3e-3 * (k ** 2).sum()
                          for k in (p['Dense_0']['kernel'], p['Conv_0']['kernel']))
  expected = jax.grad(penalty)(params)
  chex.assert_trees_all_close(updates, jax.tree_util.tree_map(lambda g: -0.1 * g, expected), rtol=1e-6)
  assert np.abs(updates['Dense_0']['kernel']).min() > 0 and not np.any(updates['Dense_0']['bias'])


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


def test_predict_pads_the_last_batch():
  model = models.create_model('mlp', hidden_sizes=(16,))
  variables = training.init_variables(model, jax.random.PRNGKey(0), IMAGE)
  images = _split(30).images
  predict = training.make_predict_fn(model, sharding.data_mesh(), batch_size=16)
  logits = predict(variables, images)
  chex.assert_shape(logits, (30, 10))
  chex.assert_trees_all_close(logits, np.asarray(model.apply(variables, jnp.asarray(images))), rtol=1e-5, atol=1e-6)
  # summarise runs on each batch inside the forward, with the batch's labels (padding cut off as for logits).
  labels = _split(30).labels
  gold = training.make_predict_fn(model, sharding.data_mesh(), batch_size=16,
                                  summarise=lambda z, y: jnp.take_along_axis(z, y[:, None], axis=-1)[:, 0])
  chex.assert_trees_all_close(gold(variables, images, labels), logits[np.arange(30), labels], rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match='labels exactly when make_predict_fn was given summarise'):
    gold(variables, images)
  # An eval batch that does not split over the 8 devices is rounded up (10 → 16), not refused: the same logits.
  chex.assert_trees_all_close(training.make_predict_fn(model, sharding.data_mesh(), batch_size=10)(variables, images),
                              logits, rtol=1e-5, atol=1e-6)


def test_online_step_trains_both_and_feeds_the_student_the_teachers_current_logits():
  teacher = models.create_model('cnn', **SMALL_CNN)
  student = models.create_model('mlp', hidden_sizes=(32, 16))
  tx = training.make_optimizer(ml_collections.ConfigDict(dict(optimizer='sgd', learning_rate=0.05,
                                                              schedule='constant', clip_norm=1.0)), 10)
  teacher_step = training.make_train_step(teacher, tx, losses.get_loss('cross_entropy'),
                                          options=training.StepOptions(output_logits=True))
  student_step = training.make_train_step(student, tx, losses.get_loss('distillation', KD))
  online = jax.jit(training.make_online_step(teacher_step, student_step))
  states = (training.init_state(teacher, tx, jax.random.PRNGKey(0), IMAGE),
            training.init_state(student, tx, jax.random.PRNGKey(1), IMAGE))
  split = _split(16)
  batch = {'inputs': split.images, 'label': split.labels}
  (new_teacher, new_student), metrics = online(states, batch, None)
  teacher_after, teacher_metrics = jax.jit(teacher_step)(states[0], batch, None)
  student_after, _ = jax.jit(student_step)(states[1], {**batch, 'teacher_logits': teacher_metrics['logits']}, None)
  chex.assert_trees_all_close(new_teacher.params, teacher_after.params, rtol=1e-6)
  chex.assert_trees_all_close(new_student.params, student_after.params, rtol=1e-6)
  assert not np.allclose(new_teacher.params['Dense_0']['kernel'], states[0].params['Dense_0']['kernel'])
  assert {'teacher_loss', 'teacher_accuracy', 'teacher_agreement', 'loss'} <= set(metrics)
  assert 'logits' not in metrics and 'teacher_logits' not in metrics


def test_bfloat16_computes_in_bfloat16_and_returns_float32_logits():
  model = models.create_model('cnn', **SMALL_CNN)
  variables = training.init_variables(model, jax.random.PRNGKey(0), IMAGE)
  images = _split(8).images
  apply = training.apply_fn(model, 'bfloat16')
  logits = apply(variables, images, train=False)
  assert logits.dtype == jnp.float32
  jaxpr = str(jax.make_jaxpr(lambda v, x: apply(v, x, train=False))(variables, images))
  assert 'bf16[8,26,26,8]' in jaxpr  # the first convolution's output
  exact = model.apply(variables, images, train=False)
  assert not np.array_equal(logits, exact)  # rounded …
  np.testing.assert_allclose(logits, exact, rtol=0.05, atol=0.05)  # … to bfloat16's 8 bits of mantissa
  assert training.apply_fn(model, 'float32') == model.apply


def test_a_bfloat16_step_keeps_float32_state_and_follows_float32_losses():
  """Parameters, optimizer state and batch statistics stay float32; the first step's loss (the same weights) is
  within 1% of float32's, and after 12 Adam steps on random labels the losses stay within 10% (measured: 5.6%)."""
  teacher = models.create_model('cnn', **SMALL_CNN)
  teacher_variables = training.init_variables(teacher, jax.random.PRNGKey(7), IMAGE)
  student = models.create_model('mlp', hidden_sizes=(32, 16))
  tx = training.make_optimizer(OPT, 12)
  mesh, split = sharding.data_mesh(), _split(64)
  runs = {}
  for dtype in ('float32', 'bfloat16'):
    step = training.make_train_step(student, tx, losses.get_loss('distillation', KD), teacher,
                                    training.StepOptions(compute_dtype=dtype))
    runs[dtype] = _run_steps(step, training.init_state(student, tx, jax.random.PRNGKey(0), IMAGE), teacher_variables,
                             mesh, split, 12)
  state, bf16_losses = runs['bfloat16']
  chex.assert_trees_all_equal_dtypes(state, runs['float32'][0])
  assert {x.dtype for x in jax.tree_util.tree_leaves((state.params, state.batch_stats, state.opt_state))
          if jnp.issubdtype(x.dtype, jnp.floating)} == {jnp.dtype(jnp.float32)}
  assert not np.array_equal(bf16_losses, runs['float32'][1])
  np.testing.assert_allclose(bf16_losses[0], runs['float32'][1][0], rtol=0.01)
  np.testing.assert_allclose(bf16_losses, runs['float32'][1], rtol=0.1)


def test_a_feature_objective_reads_both_models_penultimate_features():
  teacher = models.create_model('cnn', **SMALL_CNN)
  teacher_variables = training.init_variables(teacher, jax.random.PRNGKey(7), IMAGE)
  student = models.create_model('mlp', hidden_sizes=(32, 16))
  tx = training.make_optimizer(OPT, 8)
  loss_fn = losses.get_loss('cka', dict(**KD, cka_weight=5.0))
  state = training.init_state(student, tx, jax.random.PRNGKey(0), IMAGE)
  split = _split(16)
  batch = {'inputs': jnp.asarray(split.images), 'label': jnp.asarray(split.labels)}
  _, metrics = jax.jit(training.make_train_step(student, tx, loss_fn, teacher))(state, batch, teacher_variables)
  # The same loss from the models' sown features, computed here.
  teacher_logits, sown = teacher.apply(teacher_variables, batch['inputs'], train=False, mutable=['intermediates'])
  student_key = jax.random.split(jax.random.fold_in(state.rng, state.step))[0]
  logits, student_sown = student.apply(state.variables, batch['inputs'], train=True, rngs={'dropout': student_key},
                                       mutable=['batch_stats', 'intermediates'])
  features = (student_sown['intermediates']['penultimate'][0], sown['intermediates']['penultimate'][0])
  assert features[0].shape == (16, 16) and features[1].shape[0] == 16
  expected = jnp.mean(losses.get_loss('distillation', KD)(logits, teacher_logits, batch['label'])) + 5.0 * (
      1.0 - losses.linear_cka(*features))
  chex.assert_trees_all_close(metrics['loss'], expected, rtol=1e-5)
  with pytest.raises(ValueError, match='a feature objective needs the teacher in the step'):
    training.make_train_step(student, tx, loss_fn)


def test_a_warmup_scales_the_teacher_term_by_the_fraction_done_counting_this_step():
  student = models.create_model('mlp', hidden_sizes=(32, 16))
  tx = training.make_optimizer(OPT, 8)
  kd = dict(temperature=4.0, alpha=1.0, scale='hinton', gold_weight=1.0, dkd_target_weight=1.0,
            dkd_nontarget_weight=8.0)
  loss_fn = losses.get_loss('dkd', {**kd, 'warmup_epochs': 1.0}, steps_per_epoch=4)
  split = _split(16)
  teacher_logits = jnp.asarray(np.random.default_rng(3).normal(size=(16, 10)), jnp.float32)
  batch = {'inputs': jnp.asarray(split.images), 'label': jnp.asarray(split.labels), 'teacher_logits': teacher_logits}
  step = jax.jit(training.make_train_step(student, tx, loss_fn))
  state = training.init_state(student, tx, jax.random.PRNGKey(0), IMAGE)
  term_fn, gold_fn = losses.get_loss('dkd', kd | {'gold_weight': 0.0}), losses.get_loss('cross_entropy')
  for fraction in (0.25, 0.5, 0.75, 1.0, 1.0):  # steps 1..4 of a 4-step warm-up, then full weight
    key = jax.random.split(jax.random.fold_in(state.rng, state.step))[0]
    logits, _ = student.apply(state.variables, batch['inputs'], train=True, rngs={'dropout': key},
                              mutable=['batch_stats'])
    expected = jnp.mean(fraction * term_fn(logits, teacher_logits, batch['label'])
                        + gold_fn(logits, teacher_logits, batch['label']))
    state, metrics = step(state, batch, None)
    chex.assert_trees_all_close(metrics['loss'], expected, rtol=1e-5)


def test_the_fitnets_projector_trains_beside_the_student_and_is_left_out_of_its_variables():
  teacher = models.create_model('cnn', **SMALL_CNN)
  teacher_variables = training.init_variables(teacher, jax.random.PRNGKey(7), IMAGE)
  student = models.create_model('mlp', hidden_sizes=(32, 16))
  dims = (training.penultimate_size(student, IMAGE), training.penultimate_size(teacher, IMAGE))
  assert dims == (16, SMALL_CNN['maxout_units'][-1])
  tx = training.make_optimizer(OPT, 8)
  loss_fn = losses.get_loss('fitnets', dict(**KD, fitnets_weight=100.0))
  state = training.init_state(student, tx, jax.random.PRNGKey(0), IMAGE,
                              training.aux_initialiser(loss_fn, student, teacher, IMAGE))
  assert state.aux_params['kernel'].shape == dims
  # Only the model's own parameters are evaluated and exported, as for any other objective.
  plain = training.init_state(student, tx, jax.random.PRNGKey(0), IMAGE)
  chex.assert_trees_all_equal_structs(state.variables, plain.variables)
  assert training.aux_initialiser(losses.get_loss('cka', dict(**KD, cka_weight=1.0)), student, teacher, IMAGE) is None
  split = _split(16)
  batch = {'inputs': jnp.asarray(split.images), 'label': jnp.asarray(split.labels)}
  new_state, metrics = jax.jit(training.make_train_step(student, tx, loss_fn, teacher))(state, batch, teacher_variables)
  projector, before = new_state.aux_params, state.aux_params
  assert float(jnp.abs(projector['kernel'] - before['kernel']).max()) > 0  # trained by the hint
  assert float(jnp.abs(new_state.params['Dense_0']['kernel'] - state.params['Dense_0']['kernel']).max()) > 0
  # The step's loss: KD plus the hint on the projected student features.
  teacher_logits, sown = teacher.apply(teacher_variables, batch['inputs'], train=False, mutable=['intermediates'])
  student_key = jax.random.split(jax.random.fold_in(state.rng, state.step))[0]
  logits, student_sown = student.apply(state.variables, batch['inputs'], train=True, rngs={'dropout': student_key},
                                       mutable=['batch_stats', 'intermediates'])
  projected = student_sown['intermediates']['penultimate'][0] @ before['kernel'] + before['bias']
  expected = jnp.mean(losses.get_loss('distillation', KD)(logits, teacher_logits, batch['label'])) + 100.0 * jnp.mean(
      (projected - sown['intermediates']['penultimate'][0]) ** 2)
  chex.assert_trees_all_close(metrics['loss'], expected, rtol=1e-5)
