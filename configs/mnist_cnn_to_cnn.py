"""CNN teacher → CNN student on MNIST, with its control, the independent CNN — here the teacher itself, as in the
paper's grid: the seed grid of this pair, one seed (--config.num_seeds=4 for mean ± std; every pair at once:
configs/mnist_grid.py:main_job).

  python -m kd_jax.main --config=configs/mnist_cnn_to_cnn.py --workdir=/tmp/kd_cnn_to_cnn \
      --config.data.dir=../shared/data/mnist

The paper's recipe (for accelerators): --config=configs/mnist_cnn_to_cnn.py:paper; a smoke run: ':smoke'
"""
from kd_jax.mnist import configs


def get_config(variants: str = ''):
  return configs.pair_config('cnn', 'cnn', variants)
