"""Which job a workdir belongs to, and that one run at a time writes it.

``claim(workdir, job)`` (a context manager around a whole job) records the job in ``<workdir>/kd_jax_job.json``
and refuses a workdir that another kind of job wrote (an MNIST job in an SVA or grid workdir would overwrite its
``results.json`` and mix its ``metrics.jsonl``). Workdirs written before this record existed are recognised by their
results file. A lock file, ``<workdir>/kd_jax.lock`` (pid, host, start time), refuses a second run in the same
workdir while the first is alive; a lock left by a dead process on this host is taken over with a warning. Process 0
writes both files; every process checks the record.
"""
import contextlib
import datetime
import errno
import json
import os
import socket

from absl import logging
from etils import epath

from kd_jax import paths
from kd_jax import sharding

RECORD, LOCK = 'kd_jax_job.json', 'kd_jax.lock'
# Results files of workdirs written before the record existed, and the job that writes each.
LEGACY_RESULTS = {'grid.json': lambda data: 'mnist grid',
                  'results.json': lambda data: f'{data.get("config", {}).get("task", "mnist")} job',
                  'analysis.json': lambda data: 'analysis'}


class WorkdirInUseError(RuntimeError):
  """Another live run holds the workdir's lock."""


def job_of(workdir: paths.PathLike):
  """The job that wrote ``workdir`` ('mnist job', 'sva job', 'mnist grid', 'sva grid', 'analysis'), or None for a
  new one."""
  root = paths.absolute(workdir)
  record = root / RECORD
  if record.exists():
    return _read_json(record).get('job')
  for name, job in LEGACY_RESULTS.items():
    if (root / name).exists():
      return job(_read_json(root / name))
  return None


def _read_json(path) -> dict:
  try:
    data = json.loads(epath.Path(path).read_text())
  except ValueError as e:
    raise ValueError(f'{path} is not the JSON kd_jax writes ({e}); move the workdir aside or delete that '
                     'file') from None
  if not isinstance(data, dict):
    raise ValueError(f'{path} is not the JSON kd_jax writes (a {type(data).__name__}, not an object)')
  return data


@contextlib.contextmanager
def claim(workdir: paths.PathLike, job: str):
  """Runs the body as ``job``'s run in ``workdir``: refuses another job's workdir and a second live run."""
  root = paths.absolute(workdir)
  owner = job_of(root)
  if owner is not None and owner != job:
    raise ValueError(f'{root} is the workdir of an {owner}, not of an {job}: running here would mix their '
                     'checkpoints, metrics and results. Use another --workdir')
  if not sharding.is_primary():
    yield
    return
  root.mkdir(parents=True, exist_ok=True)
  _lock(root / LOCK)
  try:
    if owner is None:
      _write_whole(root / RECORD, json.dumps({'job': job}) + '\n')
    yield
  finally:
    _unlock(root / LOCK)


def _write_whole(path: epath.Path, text: str):
  """Writes ``text`` so that a reader finds no file or all of it, never a part: the other processes of a job read
  the record while process 0 writes it (a SLURM task once read it empty and stopped the job)."""
  if os.fspath(path).startswith('gs://'):  # an object appears whole
    path.write_text(text)
    return
  partial = path.with_name(f'.{path.name}.{os.getpid()}.partial')
  partial.write_text(text)
  partial.replace(path)


def _holder() -> dict:
  return {'pid': os.getpid(), 'host': socket.gethostname(),
          'started': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}


def _lock(path: epath.Path):
  if path.exists():
    text = path.read_text()
    try:
      held = json.loads(text)
    except ValueError:
      held = None
    if not isinstance(held, dict):  # empty: a run may be writing it this instant, or one died while taking it
      raise WorkdirInUseError(f'{path} is not a kd_jax lock record (it holds {text[:80]!r}): another run may be '
                              f'claiming {path.parent} this instant, or one died while claiming it. If no run uses '
                              f'it, delete {path}')
    if held.get('host') == socket.gethostname() and held.get('pid') == os.getpid():
      raise WorkdirInUseError(f'{path.parent} is already claimed by this process (a job inside a job?)')
    if held.get('host') == socket.gethostname() and not _alive(held.get('pid')):
      logging.warning('Taking over the lock %s of process %s, which is no longer running (started %s)', path,
                      held.get('pid'), held.get('started'))
    else:
      raise WorkdirInUseError(
          f'{path.parent} is in use by process {held.get("pid", "?")} on {held.get("host", "?")} (started '
          f'{held.get("started", "?")}): one run at a time per workdir. Wait for it, or if that run is gone '
          f'(e.g. its machine was lost), delete {path}')
    path.unlink()
  text = json.dumps(_holder()) + '\n'
  if os.fspath(path).startswith('gs://'):  # buckets have no exclusive create: check-then-write
    path.write_text(text)
    return
  try:  # exclusive create: of two runs starting together, one gets the lock
    fd = os.open(os.fspath(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL)
  except FileExistsError:
    raise WorkdirInUseError(f'{path.parent} was locked by another run that started at the same moment: one run at '
                            'a time per workdir') from None
  with os.fdopen(fd, 'w') as f:
    f.write(text)


def _unlock(path: epath.Path):
  try:
    if path.exists() and json.loads(path.read_text()).get('pid') == os.getpid():
      path.unlink()
  except (OSError, ValueError):
    pass  # leaving a lock behind only makes the next run on this host take it over


def _alive(pid) -> bool:
  if not isinstance(pid, int):
    return False
  try:
    os.kill(pid, 0)
  except OSError as e:
    return e.errno == errno.EPERM
  return True
