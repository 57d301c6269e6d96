"""A tiny seed grid for tests and smoke checks (2 seeds, tiny models, 512 examples; under a minute on a CPU).

  python -m kd_jax.grid --config=configs/grid_smoke.py --workdir=/tmp/kd_grid_smoke
"""
from kd_jax import config_base


def get_config():
  config = config_base.grid_config()
  config.num_seeds = 2
  config.setups = ('cnn', 'mlp', 'cnn_to_mlp')
  config.data.num_train = 512
  config.data.num_test = 200
  # Short runs need fast-moving BatchNorm averages for eval mode to reflect training.
  config.models.cnn.model_kwargs = dict(filters=(16, 16, 32), maxout_units=(16, 16, 16), bn_momentum=0.8)
  config.models.mlp.model_kwargs = dict(hidden_sizes=(32, 16), bn_momentum=0.8)
  for model in (config.models.cnn, config.models.mlp):
    model.batch_size = 64
    model.num_epochs = 3.0
  config.eval.batch_size = 200
  config.log_every_steps = 8
  config.checkpoint_every_steps = 0
  return config
