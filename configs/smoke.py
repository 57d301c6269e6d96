"""A tiny CNN → MLP run for tests and smoke checks (seconds on a CPU).

  python -m kd_jax.main --config=configs/smoke.py --workdir=/tmp/kd_smoke
"""
from kd_jax import config_base


def get_config():
  config = config_base.mnist_kd_config(teacher='cnn', student='mlp')
  config.log_every_steps = 4
  return config_base.shrink_to_smoke(config, (config.teacher, config.student))
