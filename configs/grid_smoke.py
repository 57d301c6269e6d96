"""A tiny seed grid for tests and smoke checks (2 seeds, tiny models, 512 examples; under a minute on a CPU).

  python -m kd_jax.grid --config=configs/grid_smoke.py --workdir=/tmp/kd_grid_smoke
"""
from kd_jax import config_base


def get_config():
  config = config_base.grid_config()
  config.num_seeds = 2
  config.setups = ('cnn', 'mlp', 'cnn_to_mlp')
  config.log_every_steps = 8
  return config_base.shrink_to_smoke(config, (config.models.cnn, config.models.mlp))
