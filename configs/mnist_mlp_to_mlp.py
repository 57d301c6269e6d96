"""MLP teacher → MLP student on MNIST, with its control, the independent MLP — here the teacher itself, as in the
paper's grid: the seed grid of this pair, one seed (--config.num_seeds=4 for mean ± std; every pair at once:
configs/mnist_grid.py:main_job).

  python -m kd_jax.main --config=configs/mnist_mlp_to_mlp.py --workdir=/tmp/kd_mlp_to_mlp \
      --config.data.dir=../shared/data/mnist

The paper's recipe (for accelerators): --config=configs/mnist_mlp_to_mlp.py:paper; a smoke run: ':smoke'
"""
from kd_jax.mnist import configs


def get_config(variants: str = ''):
  return configs.pair_config('mlp', 'mlp', variants)
