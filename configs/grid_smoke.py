"""A tiny seed grid for tests and smoke checks (2 seeds, tiny models, 512 examples; under a minute on a CPU).

  python -m kd_jax.grid --config=configs/grid_smoke.py --workdir=/tmp/kd_grid_smoke
"""
from kd_jax.mnist import configs


def get_config(variants: str = ''):
  config = configs.grid_config(','.join(['smoke', variants]))
  config.setups = ('cnn', 'mlp', 'cnn_to_mlp')
  return config
