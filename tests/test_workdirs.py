import json
import os
import re
import socket
import subprocess
import sys

from etils import epath
import pytest

from conftest import load_config
from kd_jax import main
from kd_jax import workdirs


def test_a_workdir_records_its_job_and_refuses_another_kind(tmp_path):
  with workdirs.claim(str(tmp_path / 'run'), 'mnist job'):
    assert (tmp_path / 'run' / workdirs.LOCK).exists()
  assert json.load(open(tmp_path / 'run' / workdirs.RECORD)) == {'job': 'mnist job'}
  assert not (tmp_path / 'run' / workdirs.LOCK).exists()  # released
  with workdirs.claim(str(tmp_path / 'run'), 'mnist job'):  # the same job again: resumes there
    pass
  with pytest.raises(ValueError, match=r'run is the workdir of an mnist job, not of an sva job'):
    with workdirs.claim(str(tmp_path / 'run'), 'sva job'):
      pytest.fail('the body must not run')


@pytest.mark.parametrize('results_file,content,owner', [
    ('results.json', {'config': {'task': 'sva'}}, 'sva job'),
    ('results.json', {'config': {}}, 'mnist job'),  # the MNIST main job before it was the seed grid (Dec 2026)
])
def test_workdirs_written_before_the_record_are_known_by_their_results(tmp_path, results_file, content, owner):
  (tmp_path / results_file).write_text(json.dumps(content))
  assert workdirs.job_of(str(tmp_path)) == owner
  with pytest.raises(ValueError, match=f'is the workdir of an {owner}, not of an mnist grid'):
    main.run(load_config('smoke'), str(tmp_path))
  assert not (tmp_path / workdirs.RECORD).exists() and not (tmp_path / 'cnn').exists()


def test_a_grid_workdir_written_before_the_record_is_known_by_its_report(tmp_path):
  (tmp_path / 'grid.json').write_text(json.dumps({'config': {}}))  # grids before config.task: MNIST's
  assert workdirs.job_of(str(tmp_path)) == 'mnist grid'
  with pytest.raises(ValueError, match='is the workdir of an mnist grid, not of an sva grid'):
    main.run(load_config('sva_smoke'), str(tmp_path))
  assert not (tmp_path / workdirs.RECORD).exists()


def test_the_record_appears_whole_or_not_at_all(tmp_path, monkeypatch):
  """Every process of a job reads the record while process 0 writes it: a write cut short leaves no record (the
  next run writes it again), never part of one that the other processes would refuse."""
  def cut_short(path, text, *args, **kwargs):
    with open(path, 'w') as f:
      f.write(text[:3])
    raise OSError('No space left on device')
  monkeypatch.setattr(epath.Path, 'write_text', cut_short)
  with pytest.raises(OSError, match='No space left'):
    with workdirs.claim(str(tmp_path), 'mnist job'):
      pytest.fail('the body must not run')
  assert workdirs.job_of(str(tmp_path)) is None
  monkeypatch.undo()
  with workdirs.claim(str(tmp_path), 'mnist job'):
    pass
  assert workdirs.job_of(str(tmp_path)) == 'mnist job'


def test_a_garbage_record_is_named(tmp_path):
  (tmp_path / workdirs.RECORD).write_text('{not json')
  with pytest.raises(ValueError, match=f'{workdirs.RECORD} is not the JSON kd_jax writes'):
    workdirs.job_of(str(tmp_path))


@pytest.mark.parametrize('content', ['', '[1, 2]', '{"pid": 12'])
def test_a_lock_file_that_is_no_lock_record_is_named_not_taken_over(tmp_path, content):
  lock = tmp_path / workdirs.LOCK
  lock.write_text(content)
  with pytest.raises(workdirs.WorkdirInUseError, match=rf'kd_jax.lock is not a kd_jax lock record \(it holds '
                                                       rf'{re.escape(repr(content))}\): another run may be claiming'):
    with workdirs.claim(str(tmp_path), 'mnist job'):
      pytest.fail('the body must not run')
  assert lock.read_text() == content  # left for its writer, or for the user to delete


def test_a_live_run_holds_the_workdir_and_a_dead_ones_lock_is_taken_over(tmp_path, caplog):
  sleeper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
  try:
    lock = tmp_path / workdirs.LOCK
    lock.write_text(json.dumps({'pid': sleeper.pid, 'host': socket.gethostname(), 'started': 'earlier'}))
    with pytest.raises(workdirs.WorkdirInUseError,
                       match=rf'is in use by process {sleeper.pid} on {socket.gethostname()} \(started earlier\)'):
      with workdirs.claim(str(tmp_path), 'mnist job'):
        pytest.fail('the body must not run')
    assert json.loads(lock.read_text())['pid'] == sleeper.pid  # the live run's lock is left alone
  finally:
    sleeper.kill()
    sleeper.wait()
  with workdirs.claim(str(tmp_path), 'mnist job'):  # its process is gone: the lock is stale
    assert json.loads(lock.read_text())['pid'] == os.getpid()
  assert any(f'process {sleeper.pid}, which is no longer running' in r.getMessage() for r in caplog.records)
  lock.write_text(json.dumps({'pid': 1, 'host': 'another-host', 'started': 'earlier'}))
  with pytest.raises(workdirs.WorkdirInUseError, match='on another-host.*delete .*kd_jax.lock'):
    with workdirs.claim(str(tmp_path), 'mnist job'):
      pytest.fail('the body must not run')
