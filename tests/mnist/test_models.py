import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kd_jax.mnist import models


def _count(tree):
  return sum(x.size for x in jax.tree_util.tree_leaves(tree))


@pytest.mark.parametrize('name,kwargs', [('cnn', {}), ('mlp', {}),
                                         ('cnn', dict(filters=(32, 32, 64), maxout_units=(32, 32, 16)))])
def test_logits_shape_dtype_and_modes(name, kwargs):
  model = models.create_model(name, **kwargs)
  x = jax.random.uniform(jax.random.PRNGKey(0), (6, 28, 28, 1))
  variables = model.init(jax.random.PRNGKey(1), x)
  eval_logits = model.apply(variables, x, train=False)
  train_logits, updates = model.apply(variables, x, train=True, rngs={'dropout': jax.random.PRNGKey(2)},
                                      mutable=['batch_stats'])
  chex.assert_shape([eval_logits, train_logits], (6, 10))
  chex.assert_type([eval_logits, train_logits], jnp.float32)
  chex.assert_tree_all_finite(train_logits)
  # Training mode updates the BatchNorm running statistics.
  assert not np.allclose(jax.tree_util.tree_leaves(updates['batch_stats'])[0],
                         jax.tree_util.tree_leaves(variables['batch_stats'])[0])
  # Eval mode draws no dropout (other keys, the same logits) and uses the running statistics, not the batch's (an
  # example's logits do not depend on the rest of its batch).
  chex.assert_trees_all_equal(eval_logits, model.apply(variables, x, train=False,
                                                       rngs={'dropout': jax.random.PRNGKey(7)}))
  chex.assert_trees_all_close(model.apply(variables, x[:2], train=False), eval_logits[:2], atol=1e-5)
  assert np.abs(np.asarray(train_logits - eval_logits)).max() > 1e-3


def test_paper_sizes():
  x = jnp.zeros((1, 28, 28, 1))
  cnn = models.CNN().init(jax.random.PRNGKey(0), x)['params']
  mlp = models.MLP().init(jax.random.PRNGKey(0), x)['params']
  kernels = lambda p: sum(v.size for k, v in jax.tree_util.tree_flatten_with_path(p)[0] if 'kernel' in str(k))
  # The paper recipe: ~112k CNN weights and ~472k MLP weights.
  assert 110_000 < kernels(cnn) < 114_000
  assert 465_000 < kernels(mlp) < 475_000
  assert cnn['Dense_0']['kernel'].shape == (16, 10)  # global-average-pooled 16 maxout units
  assert _count(mlp) > _count(cnn)


def test_maxout_takes_group_maxima():
  x = jnp.array([[1., 5., 2., 0., 3., 3.]])
  chex.assert_trees_all_equal(models.maxout(x, 3), jnp.array([[5., 2., 3.]]))
  chex.assert_trees_all_equal(models.maxout(x, 6), x)
  with pytest.raises(ValueError, match='do not split'):
    models.maxout(x, 4)


def test_unknown_model_and_wrong_input_shape():
  with pytest.raises(ValueError, match="unknown model 'resnet'.*cnn.*mlp"):
    models.create_model('resnet')
  with pytest.raises(ValueError, match='28×28×1'):
    models.MLP().init(jax.random.PRNGKey(0), jnp.zeros((2, 784)))


def test_max_pool_equals_flax_max_pool_values_and_gradients():
  x = jax.nn.relu(jnp.asarray(np.random.default_rng(0).normal(size=(4, 13, 13, 8)), jnp.float32))
  reference = lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))
  chex.assert_trees_all_equal(models.max_pool(x, 2), reference(x))  # 13 → 6: the last row and column dropped
  chex.assert_shape(models.max_pool(x, 2), (4, 6, 6, 8))
  weights = jnp.arange(4 * 6 * 6 * 8, dtype=jnp.float32).reshape(4, 6, 6, 8)
  grads = [jax.grad(lambda x, f=f: jnp.sum(f(x) * weights))(x) for f in (lambda x: models.max_pool(x, 2), reference)]
  chex.assert_trees_all_equal(grads[0] * (x > 0), grads[1] * (x > 0))  # where the ReLU passes gradients


def _sharded_gradients(model, compiler_options):
  """The CNN's training-mode loss gradients (and updated batch statistics), the batch sharded over all devices."""
  images = np.random.default_rng(0).uniform(size=(64, 28, 28, 1)).astype(np.float32)
  labels = np.arange(64) % 10
  variables = model.init(jax.random.PRNGKey(0), images[:1])

  def loss(params):
    logits, updates = model.apply({'params': params, 'batch_stats': variables['batch_stats']}, images, train=True,
                                  mutable=['batch_stats'], rngs={'dropout': jax.random.PRNGKey(1)})
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1)), updates

  mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ('data',))
  batch = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data'))
  images = jax.device_put(images, batch)
  return jax.jit(jax.grad(loss, has_aux=True), compiler_options=compiler_options)(variables['params'])


def test_the_cnn_training_compiler_options_compute_what_the_defaults_do():
  # The options change which library runs each op; a wrong choice showed up as wrong gradients (an empty YNNPACK
  # fusion list: BatchNorm's gradients off by 1e-2 relative on one device, by more than their size on eight).
  model = models.create_model('cnn', filters=(16, 16, 32), maxout_units=(16, 16, 16), bn_momentum=0.8)
  options = model.training_compiler_options.get(jax.default_backend(), {})
  defaults, with_options = _sharded_gradients(model, None), _sharded_gradients(model, options)
  for a, b in zip(jax.tree_util.tree_leaves(with_options), jax.tree_util.tree_leaves(defaults)):
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-4 * float(np.max(np.abs(b))))  # rounding, leaf by leaf
