"""The shared command line of kd_jax's entry points: ``--config`` (with overrides) and ``--workdir``.

Errors are one line, ``kd_jax: error: …``, with exit code 2 for usage and
config errors (bad flags, settings, data files) and 1 for runtime ones;
``--verbose`` (or ``KD_JAX_VERBOSE=1``) shows the traceback instead. Ctrl-C
and SIGTERM save a checkpoint, print where the run can resume from and exit
with 130 and 75 (:mod:`kd_jax.interrupts`).
"""
import errno
import logging as py_logging
import os
import shutil
import sys
from typing import Callable

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from kd_jax import interrupts
from kd_jax import sharding

USAGE_ERRORS = (ValueError, FileNotFoundError, KeyError)  # the config or the inputs are wrong: exit 2


def run(job: Callable[..., object]):
  """Parses ``--config``/``--workdir`` and runs ``job(config, workdir)``."""
  config = config_flags.DEFINE_config_file('config', None, 'Experiment config file.', lock_config=True)
  workdir = flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and results.')
  verbose = flags.DEFINE_bool('verbose', os.environ.get('KD_JAX_VERBOSE', '') not in ('', '0'),
                              'Show tracebacks of errors (also: KD_JAX_VERBOSE=1).')
  flags.mark_flags_as_required(['config', 'workdir'])

  def main(argv):
    if len(argv) > 1:
      _exit(2, f'unexpected arguments: {argv[1:]}')
    logging.set_verbosity(logging.INFO)
    # Orbax logs every file it writes at INFO; keep its warnings, drop the chatter.
    logging.get_absl_handler().addFilter(lambda r: r.levelno >= py_logging.WARNING or 'orbax' not in r.pathname)
    if not verbose.value:
      _quiet_async_noise()
    interrupts.handle_sigterm()
    try:
      sharding.initialize_distributed(timeout=config.value.get('distributed_timeout', 300.0))
      apply_jax_settings(config.value, workdir.value)
      job(config.value, workdir.value)
    except KeyboardInterrupt as e:  # interrupts.Stopped carries its exit code: 130 for Ctrl-C, 75 for SIGTERM
      stopped_exit(getattr(e, 'exit_code', 130), str(e) or 'interrupted')
    except Exception as e:  # pylint: disable=broad-except
      if verbose.value:
        raise
      code = 2 if isinstance(e, USAGE_ERRORS) and not _is_disk_full(e) else 1
      _exit(code, error_message(e, workdir.value))

  app.run(main, flags_parser=parse_flags)


def apply_jax_settings(config, workdir: str):
  """The process-wide JAX settings a config asks for: ``matmul_precision`` and the persistent compilation cache
  (``compilation_cache_dir``: '' = ``<workdir>/.jax_cache``, 'off' = none)."""
  import jax  # pylint: disable=g-import-not-at-top
  precision = config.get('matmul_precision', 'default')
  if precision != 'default':
    jax.config.update('jax_default_matmul_precision', precision)
  cache = config.get('compilation_cache_dir', 'off')
  if cache != 'off':
    cache = cache or os.path.join(workdir, '.jax_cache')
    jax.config.update('jax_compilation_cache_dir', cache)
    logging.info('JAX compilation cache: %s (a resumed run reuses what it compiled)', cache)


def _quiet_async_noise():
  """A damaged checkpoint makes TensorStore finish reads on Orbax's closed asyncio loops: each prints an 'Event loop
  is closed' traceback, and asyncio logs unretrieved task errors in full (hundreds of lines around kd_jax's one).
  kd_jax reports the damage itself; these go to the debug log (``--verbose`` shows them)."""
  default_hook = sys.unraisablehook

  def hook(unraisable):
    if isinstance(unraisable.exc_value, RuntimeError) and 'Event loop is closed' in str(unraisable.exc_value):
      logging.debug('ignored after a checkpoint error: %r', unraisable.exc_value)
      return
    default_hook(unraisable)

  sys.unraisablehook = hook
  logging.get_absl_handler().addFilter(lambda r: r.name != 'asyncio')


def parse_flags(argv):
  """absl's flag parsing, with a bad flag, config file, variant or override as one line and exit status 2."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    _exit(2, _last_line(str(e)))
  except (AttributeError, KeyError) as e:  # ml_collections: an override of a field the config does not have
    _exit(2, f'a --config.* override names no field of the config ({e}); --config.FIELD must exist in the file'
          + _moved_field_hint(argv, str(e)))


# Fields of the MNIST single job, which became the seed grid (Dec 2026), and where their settings are now.
MOVED_FIELDS = {'teacher.': 'config.models.<teacher model>.*', 'student.loss': 'config.student_loss',
                'student.': "config.models.<student model>.* (its own row's settings too) or config.student_overrides",
                'train_independent_student': "config.setups (leave the student model's own setup out)",
                'independent_overrides': 'config.models.<student model>.* (the independent row)',
                'data.demo_teacher_epochs': 'config.data.demo_epochs'}  # and SVA's: 'cross_fit_folds' kept its name


def _moved_field_hint(argv, missing: str) -> str:
  """Where a seed-grid config keeps what an override names by the single jobs' fields, when the part of it the
  config lacks (``missing``: ml_collections' message names it) is that old field's; else ''."""
  names = [a.split('=', 1)[0][len('--config.'):] for a in argv if a.startswith('--config.')]
  for name in names:
    old = next((old for old in MOVED_FIELDS if name.startswith(old)), None)
    # The part a grid config lacks: the section (teacher, student) or the field itself (data.demo_teacher_epochs).
    if old and f"'{old.split('.')[1] if old.startswith('data.') else old.split('.')[0]}'" in missing:
      return (f'. Every config is a seed grid (since Dec 2026): --config.{name} is now '
              f'{MOVED_FIELDS[old]} (docs/guide.md)')
  return ''


def error_message(error: Exception, workdir: str) -> str:
  """One line for ``error``; a full disk says where and how much space to free."""
  if _is_disk_full(error):
    path = getattr(error, 'filename', None) or workdir
    free = shutil.disk_usage(workdir if os.path.isdir(workdir) else '.').free
    needed = _largest_checkpoint_bytes(workdir)
    return (f'no space left on the device writing {path} ({free / 2**20:.0f} MiB free there); free at least '
            f'{needed / 2**20:.0f} MiB (one checkpoint of this run) and run the same command again to resume')
  # kd_jax's own errors say what is wrong; anything else also says what kind of error it is.
  ours = isinstance(error, USAGE_ERRORS + (RuntimeError, FloatingPointError))
  return ' '.join((str(error) if ours else f'{type(error).__name__}: {error}').split())


def _is_disk_full(error: Exception) -> bool:
  # Orbax/TensorStore may re-raise ENOSPC as another exception type: recognise the text too.
  return (isinstance(error, OSError) and error.errno == errno.ENOSPC) or 'No space left on device' in str(error)


def _largest_checkpoint_bytes(workdir: str) -> int:
  """The largest checkpoint step directory under ``workdir`` (directories named by a step number)."""
  largest = 0
  for root, dirs, _ in os.walk(workdir):
    for name in dirs:
      if name.isdigit():
        step_dir = os.path.join(root, name)
        largest = max(largest, sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(step_dir)
                                   for f in fs))
  return largest


def _last_line(message: str) -> str:
  """A flag error's own words: ml_collections wraps config-file errors in a traceback; keep its last line."""
  lines = [line.strip() for line in message.splitlines() if line.strip()]
  if len(lines) > 1 and any(line.startswith('Traceback') for line in lines):
    return f'{lines[0]} {lines[-1]}'
  return ' '.join(lines)


def stopped_exit(code: int, message: str):
  """Ends a job stopped by a signal, after every ``finally`` has run (saves complete, writers closed). A single
  process leaves at once: stopped while XLA compiles or dispatches on its own threads, the interpreter's teardown
  crashes (a segmentation fault, exit 139, instead of ``code``). The processes of a distributed job leave through
  ``sys.exit``: JAX's shutdown is their barrier."""
  import jax  # pylint: disable=g-import-not-at-top
  if jax.distributed.is_initialized():
    _exit(code, message, 'kd_jax: ')
  print(f'kd_jax: {message}', file=sys.stderr, flush=True)
  logging.flush()
  sys.stdout.flush()
  os._exit(code)  # pylint: disable=protected-access


def _exit(code: int, message: str, prefix: str = 'kd_jax: error: '):
  print(prefix + message, file=sys.stderr, flush=True)
  sys.exit(code)
