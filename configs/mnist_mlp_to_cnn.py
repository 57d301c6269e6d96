"""MLP teacher → CNN student on MNIST (one seed; the seed grid is configs/mnist_grid.py).

  python -m kd_jax.main --config=configs/mnist_mlp_to_cnn.py --workdir=/tmp/kd_mlp_to_cnn \
      --config.data.dir=../shared/data/mnist

The paper's recipe (for accelerators): --config=configs/mnist_mlp_to_cnn.py:paper
"""
from kd_jax import config_base


def get_config(variant: str = 'cpu'):
  return config_base.pair_config('mlp', 'cnn', variant)
