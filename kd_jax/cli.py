"""The shared command line of kd_jax's entry points: ``--config`` (with overrides) and ``--workdir``."""
import logging as py_logging
from typing import Callable

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags


def run(job: Callable[..., object]):
  """Parses ``--config``/``--workdir`` and runs ``job(config, workdir)``."""
  config = config_flags.DEFINE_config_file('config', None, 'Experiment config file.', lock_config=True)
  workdir = flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and results.')
  flags.mark_flags_as_required(['config', 'workdir'])

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    logging.set_verbosity(logging.INFO)
    # Orbax logs every file it writes at INFO; keep its warnings, drop the chatter.
    logging.get_absl_handler().addFilter(lambda r: r.levelno >= py_logging.WARNING or 'orbax' not in r.pathname)
    job(config.value, workdir.value)

  app.run(main)
