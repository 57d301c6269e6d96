"""MLP teacher → MLP student on MNIST (one seed; the seed grid is configs/mnist_grid.py).

  python -m kd_jax.main --config=configs/mnist_mlp_to_mlp.py --workdir=/tmp/kd_mlp_to_mlp \
      --config.data.dir=../shared/data/mnist

The paper's recipe (for accelerators): --config=configs/mnist_mlp_to_mlp.py:paper; a smoke run: ':smoke'
"""
from kd_jax.mnist import configs


def get_config(variants: str = ''):
  return configs.pair_config('mlp', 'mlp', variants)
