"""Runs a kd_jax experiment: ``python -m kd_jax.main --config=configs/<x>.py --workdir=<dir>``."""
import logging as py_logging

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from kd_jax import experiment

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file.', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and results.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  logging.set_verbosity(logging.INFO)
  # Orbax logs every file it writes at INFO; keep its warnings, drop the chatter.
  logging.get_absl_handler().addFilter(lambda r: r.levelno >= py_logging.WARNING or 'orbax' not in r.pathname)
  experiment.run(_CONFIG.value, _WORKDIR.value)


if __name__ == '__main__':
  app.run(main)
