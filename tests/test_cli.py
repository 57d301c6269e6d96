import errno

from kd_jax import cli


def test_a_full_disk_names_the_path_and_the_space_to_free(tmp_path):
  step_dir = tmp_path / 'teacher' / '40' / 'state'
  step_dir.mkdir(parents=True)
  (step_dir / 'data').write_bytes(b'x' * 3 * 2**20)
  error = OSError(errno.ENOSPC, 'No space left on device', str(tmp_path / 'student' / '45'))
  message = cli.error_message(error, str(tmp_path))
  assert message.startswith(f'no space left on the device writing {tmp_path}/student/45 (')
  assert 'free at least 3 MiB (one checkpoint of this run)' in message and '\n' not in message


def test_errors_are_one_line():
  assert cli.error_message(ValueError('config.x must be\n  positive'), '.') == 'config.x must be positive'
  assert cli.error_message(TypeError('bad'), '.') == 'TypeError: bad'


def test_a_full_disk_reported_by_tensorstore_is_recognised(tmp_path):
  error = ValueError('RESOURCE_EXHAUSTED: Error writing local file "/x/7/state/d/ab": No space left on device')
  assert cli.error_message(error, str(tmp_path)).startswith(f'no space left on the device writing {tmp_path} (')


def test_jax_settings_of_a_config_matmul_precision_and_the_compilation_cache(tmp_path):
  import jax  # pylint: disable=g-import-not-at-top
  import ml_collections  # pylint: disable=g-import-not-at-top
  saved = (jax.config.jax_default_matmul_precision, jax.config.jax_compilation_cache_dir)
  try:
    cli.apply_jax_settings(ml_collections.ConfigDict(dict(matmul_precision='highest', compilation_cache_dir='')),
                           str(tmp_path))
    assert jax.config.jax_default_matmul_precision == 'highest'
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / '.jax_cache')  # the workdir's, by default
    cli.apply_jax_settings(ml_collections.ConfigDict(dict(matmul_precision='default',
                                                          compilation_cache_dir=str(tmp_path / 'elsewhere'))), '.')
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / 'elsewhere')
  finally:
    jax.config.update('jax_default_matmul_precision', saved[0])
    jax.config.update('jax_compilation_cache_dir', saved[1])


def test_a_stopped_job_leaves_without_the_interpreter_teardown_that_crashed_under_xla_threads(tmp_path):
  # Stopped while XLA compiled on its own threads, the interpreter's teardown died of a segmentation fault (exit 139
  # in 9 of 11 tries); a stopped single-process job now leaves at once, its message and log lines flushed first.
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  marker = tmp_path / 'teardown_ran'
  script = f'''
import atexit
from absl import logging
from kd_jax import cli, interrupts

def job(config, workdir):
  atexit.register(lambda: open({str(marker)!r}, 'w').close())
  logging.info('a log line written just before the stop')
  raise interrupts.Stopped('stopped by SIGTERM outside training', 75)

cli.run(job)
'''
  from conftest import ROOT  # pylint: disable=g-import-not-at-top
  done = subprocess.run([sys.executable, '-c', script, f'--config={ROOT}/configs/smoke.py', f'--workdir={tmp_path}'],
                        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)
  assert done.returncode == 75, done.stderr
  assert done.stderr.splitlines()[-1] == 'kd_jax: stopped by SIGTERM outside training'
  assert 'a log line written just before the stop' in done.stderr
  assert not marker.exists()  # no teardown: atexit handlers (and the interpreter's finalisation) did not run
