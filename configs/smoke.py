"""A tiny CNN → MLP run for tests and smoke checks (seconds on a CPU).

  python -m kd_jax.main --config=configs/smoke.py --workdir=/tmp/kd_smoke
"""
from kd_jax import config_base


def get_config():
  config = config_base.mnist_kd_config(teacher='cnn', student='mlp')
  config.data.num_train = 512
  config.data.num_test = 200
  # Short runs need fast-moving BatchNorm averages for eval mode to reflect training.
  config.teacher.model_kwargs = dict(filters=(16, 16, 32), maxout_units=(16, 16, 16), bn_momentum=0.8)
  config.student.model_kwargs = dict(hidden_sizes=(32, 16), bn_momentum=0.8)
  for phase in (config.teacher, config.student):
    phase.batch_size = 64
    phase.num_epochs = 3.0
  config.eval.batch_size = 200
  config.log_every_steps = 4
  config.checkpoint_every_steps = 0
  return config
