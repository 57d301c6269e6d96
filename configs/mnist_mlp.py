"""Independent MLP baseline on MNIST (gold labels only), several seeds vmapped, with its report.

  python -m kd_jax.grid --config=configs/mnist_mlp.py --workdir=/tmp/kd_mlp --config.data.dir=../shared/data/mnist
"""
from kd_jax import config_base


def get_config(variant: str = 'cpu'):
  config = config_base.grid_config(variant)
  config.setups = ('mlp',)
  return config
