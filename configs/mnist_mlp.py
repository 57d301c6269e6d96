"""Independent MLP baseline on MNIST (gold labels only), several seeds vmapped, with its report.

  python -m kd_jax.grid --config=configs/mnist_mlp.py --workdir=/tmp/kd_mlp --config.data.dir=../shared/data/mnist
"""
from kd_jax.mnist import configs


def get_config(variants: str = ''):
  config = configs.grid_config(variants)
  config.setups = ('mlp',)
  return config
