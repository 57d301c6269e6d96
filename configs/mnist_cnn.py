"""Independent CNN baseline on MNIST (gold labels only), several seeds vmapped, with its report.

  python -m kd_jax.grid --config=configs/mnist_cnn.py --workdir=/tmp/kd_cnn --config.data.dir=../shared/data/mnist
"""
from kd_jax.mnist import configs


def get_config(variants: str = ''):
  config = configs.grid_config(variants)
  config.setups = ('cnn',)
  return config
