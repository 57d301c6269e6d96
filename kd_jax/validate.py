"""Checks a job's config on this machine, for the devices of the machine it will run on, before anything is rented.

    python -m kd_jax.validate --job=main --devices=16 --config=configs/mnist_cnn_to_mlp.py:paper [--config.a=b ...]

The launchers (launch/tpu.py, launch/slurm.py) run this with the config, variants and overrides they ship, so that a
bad variant, an unknown or bad ``--config.*`` override, a batch size that does not split over the target's devices
or a config without setups is one line here, not an error on a VM that was created and installed.
``--devices``: the target's device count (this process then sees that many CPU devices); no data is read and no
model is trained — only what the job checks before it starts.
"""
import os
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

_JOB = flags.DEFINE_enum('job', 'main', ['main', 'grid'],
                         'main: python -m kd_jax.main (any config); grid: python -m kd_jax.grid (grid configs)')
_DEVICES = flags.DEFINE_integer('devices', 0, "the target's device count (0: this machine's)")
_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file.', lock_config=True)
flags.mark_flags_as_required(['config'])


def _devices_from_argv(argv) -> int:
  for arg in argv:
    if arg.startswith('--devices='):
      return int(arg.split('=', 1)[1])
  return 0


def main(argv):
  del argv
  from kd_jax import cli  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  if _DEVICES.value and jax.device_count() != _DEVICES.value:  # '--devices N' (no '=') came too late for JAX
    print(f'kd_jax: error: this process sees {jax.device_count()} devices, not --devices={_DEVICES.value}: write the '
          'flag as --devices=N', file=sys.stderr, flush=True)
    sys.exit(2)
  try:
    if _JOB.value == 'main':
      from kd_jax import main as job  # pylint: disable=g-import-not-at-top
    else:
      from kd_jax import seed_grid as job  # pylint: disable=g-import-not-at-top
    job.check(_CONFIG.value)
  except Exception as e:  # pylint: disable=broad-except
    print(f'kd_jax: error: {cli.error_message(e, ".")}', file=sys.stderr, flush=True)
    sys.exit(2)
  print(f'kd_jax: the config is valid for {_JOB.value} on {jax.device_count()} device(s)', flush=True)


if __name__ == '__main__':
  devices = _devices_from_argv(sys.argv)
  if devices:  # before JAX starts: this process sees the target's device count, as CPU devices
    os.environ['JAX_PLATFORMS'] = 'cpu'
    os.environ['XLA_FLAGS'] = f'{os.environ.get("XLA_FLAGS", "")} --xla_force_host_platform_device_count={devices}'
  from kd_jax import cli  # pylint: disable=g-import-not-at-top
  app.run(main, flags_parser=cli.parse_flags)
