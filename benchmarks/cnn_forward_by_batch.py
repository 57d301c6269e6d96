"""The MNIST CNN's eval forward pass (examples/s) at several batch sizes: finds batch sizes where XLA's CPU backend
(YNNPACK) falls off a cliff, and the layer responsible.

  python benchmarks/cnn_forward_by_batch.py                              # paper width, batches around 128
  python benchmarks/cnn_forward_by_batch.py --layers=2 --batches=120,128 # only the first 2 conv blocks

Found with it on the 2-core dev CPU (JAX 0.10.2): the paper-width CNN runs ~2,000 ex/s at every batch from 64 to 384
except exactly 128 (~700), the second convolution block (26×26×128 → 24×24×64) at fault; one thread or two alike.
"""
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from kd_jax.mnist import configs
from kd_jax.mnist import models

_CNN = flags.DEFINE_enum('cnn', 'paper', ['cpu', 'paper'], 'CNN width: the CPU default or the paper’s.')
_BATCHES = flags.DEFINE_list('batches', ['64', '120', '127', '128', '129', '136', '256'], 'Batch sizes to time.')
_LAYERS = flags.DEFINE_integer('layers', 3, 'Time only the first N conv blocks (1-3), to find a slow layer.')
_SECONDS = flags.DEFINE_float('seconds', 1.0, 'Length of one measurement; the median of 3 is printed.')


def main(_):
  kwargs = dict(configs.MODEL_SETTINGS['cnn'][_CNN.value])
  n = _LAYERS.value
  model = models.create_model('cnn', **{**kwargs, 'filters': kwargs['filters'][:n],
                                        'maxout_units': kwargs['maxout_units'][:n], 'pool_sizes': (1, 2, 2)[:n]})
  variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))
  forward = jax.jit(lambda v, x: model.apply(v, x, train=False))  # XLA's default options, as inference compiles
  print(f'{_CNN.value}-width CNN, first {n} conv block(s), eval forward on {jax.devices()[0].device_kind}')
  for batch in map(int, _BATCHES.value):
    x = jnp.asarray(np.random.default_rng(0).random((batch, 28, 28, 1), np.float32))
    jax.block_until_ready(forward(variables, x))  # compile
    rates = []
    for _ in range(3):
      start, calls = time.perf_counter(), 0
      while time.perf_counter() - start < _SECONDS.value:
        jax.block_until_ready(forward(variables, x))
        calls += 1
      rates.append(calls * batch / (time.perf_counter() - start))
    print(f'batch {batch:5d}: {np.median(rates):8.0f} ex/s', flush=True)


if __name__ == '__main__':
  app.run(main)
