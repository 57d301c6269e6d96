"""Training metrics to ``metrics.jsonl`` and TensorBoard event files, in a local or bucket (gs://) workdir."""
import io
import json
import os
import time
from typing import Dict

from absl import logging
from etils import epath

from kd_jax import paths
from kd_jax import sharding


class MetricWriter:
  """Training metrics to ``metrics.jsonl`` and TensorBoard event files, in a local or bucket (gs://) workdir.

  Bucket objects cannot be appended to, so the records are kept in memory and the file is rewritten at most every
  ``flush_seconds``, at every checkpoint (:meth:`flush`) and at the end: a killed run keeps every record up to its
  last checkpoint, and a resumed run logs the steps after it again.
  """

  def __init__(self, workdir: paths.PathLike, flush_seconds: float = 10.0):
    self._primary = sharding.is_primary()  # other processes write nothing
    if not self._primary:
      return
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    from tensorboardX import record_writer  # pylint: disable=g-import-not-at-top
    for scheme in ('gs', 's3'):  # tensorboardX's own gs:// writer needs google-cloud-storage: use epath's instead
      record_writer.register_writer_factory(scheme, _EpathEventFiles())
    self._path = epath.Path(workdir) / 'metrics.jsonl'
    self._lines = self._path.read_text().splitlines(keepends=True) if self._path.exists() else []
    self._flush_seconds, self._flushed_at = flush_seconds, time.monotonic()
    self._tensorboard = SummaryWriter(os.fspath(epath.Path(workdir) / 'tensorboard'))

  def write(self, phase: str, step: int, scalars: Dict[str, float]):
    if not self._primary:
      return
    self._lines.append(json.dumps({'phase': phase, 'step': step, **scalars}) + '\n')
    for name, value in scalars.items():
      self._tensorboard.add_scalar(f'{phase}/{name}', value, step)
    if time.monotonic() - self._flushed_at >= self._flush_seconds:
      self.flush()

  def flush(self):
    if not self._primary:
      return
    self._path.write_text(''.join(self._lines))
    self._tensorboard.flush()
    self._flushed_at = time.monotonic()

  def truncate(self, phase: str, step: int):
    """Drops ``phase``'s records after ``step``: a resumed run logs those steps again."""
    if not self._primary:
      return
    kept = [line for line in self._lines if not _later_record(line, phase, step)]
    if len(kept) != len(self._lines):
      logging.info('%s: dropped %d metric records after step %d from %s', phase, len(self._lines) - len(kept), step,
                   self._path)
      self._lines = kept
      self.flush()

  def close(self):
    if not self._primary:
      return
    self.flush()
    self._tensorboard.close()


class _EpathEventFiles:
  """A tensorboardX writer factory for event files in a bucket, written through etils.epath."""

  def open(self, path):
    return _BucketEventFile(path)

  def directory_check(self, path):
    del path  # buckets have no directories to create


class _BucketEventFile:
  """An event file in a bucket. Objects cannot be appended to (and bucket file objects have no ``fileno`` for
  tensorboardX's fsync), so every flush rewrites the whole file, as tensorboardX's own GCS writer does: TensorBoard
  sees the events of a running job."""

  def __init__(self, path):
    self._path, self._buffer = epath.Path(path), io.BytesIO()

  def write(self, data: bytes):
    self._buffer.write(data)

  def flush(self):
    self._path.write_bytes(self._buffer.getvalue())

  def close(self):
    self.flush()


def _later_record(line: str, phase: str, step: int) -> bool:
  try:
    record = json.loads(line)
  except ValueError:
    return True  # a line cut short by an interrupted write
  return record.get('phase') == phase and record.get('step', 0) > step
