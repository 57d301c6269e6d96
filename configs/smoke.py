"""A tiny CNN → MLP run for tests and smoke checks (seconds on a CPU); the same as mnist_cnn_to_mlp.py:smoke.

  python -m kd_jax.main --config=configs/smoke.py --workdir=/tmp/kd_smoke
"""
from kd_jax.mnist import configs


def get_config(variants: str = ''):
  return configs.pair_config('cnn', 'mlp', ','.join(['smoke', variants]))
