"""The paper's MNIST grid: independent CNN and MLP, and CNN→MLP, MLP→MLP, CNN→CNN, MLP→CNN, 4 seeds each.

CPU budget (full MNIST, 2 cores: ~35 minutes):
  python -m kd_jax.grid --config=configs/mnist_grid.py --workdir=/tmp/kd_grid \
      --config.data.dir=../shared/data/mnist

Online KD (teacher and student trained together):  --config.mode=online
Teacher logits computed in the step instead of cached: --config.cache_teacher_logits=False
The paper's recipe (for accelerators): --config=configs/mnist_grid.py:paper; a smoke run: ':smoke'
"""
from kd_jax.mnist import configs


def get_config(variants: str = ''):
  return configs.grid_config(variants)
