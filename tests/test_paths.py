"""Jobs read and write through etils.epath: a gs:// workdir, data dir and teacher checkpoint work unchanged.

There is no GCS here, so a fake bucket stands in: epath's fsspec backend gets, for ``gs://`` paths, a local
filesystem rooted in a temporary directory that records what it writes. Orbax's own GCS access (TensorStore's gcs
driver, google-cloud-storage) cannot run without the network: its CheckpointManager is handed the bucket's local
directory, and the test checks that it was asked for the unmangled gs:// path.
"""
import io
import json
import os
import shutil

from etils import epath
from etils.epath import backend
from fsspec.implementations.local import LocalFileSystem
import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import load_config
from kd_jax import metric_writer
from kd_jax import main
from kd_jax import paths
from kd_jax import reports
from kd_jax.mnist import data as mnist_data
from kd_jax.sva import data as sva_data


class _Bucket(LocalFileSystem):
  """``gs://<bucket>/x`` as the local file ``<root>/<bucket>/x``; records the files it opens for writing."""
  root = ''  # set per test, in a subclass

  def __init__(self):
    super().__init__(auto_mkdir=True)  # like GCS: no directories to create before writing
    self.written = set()

  @classmethod
  def local(cls, path) -> str:
    path = os.fspath(path)
    return os.path.join(cls.root, path[len('gs://'):]) if path.startswith('gs://') else path

  @classmethod
  def _strip_protocol(cls, path):
    return super()._strip_protocol(cls.local(path))

  def glob(self, path, **kwargs):  # like gcsfs: 'bucket/x' (epath puts gs:// in front)
    return [os.path.relpath(p, self.root) for p in super().glob(path, **kwargs)]

  def _open(self, path, mode='rb', **kwargs):
    if any(m in mode for m in 'wa'):
      self.written.add(os.path.relpath(path, self.root))
    f = super()._open(path, mode, **kwargs)
    f.fileno = _no_fileno  # like gcsfs: a bucket file is no OS file
    return f


def _no_fileno():
  raise io.UnsupportedOperation('fileno')


@pytest.fixture
def bucket(tmp_path, monkeypatch):
  fake = type('Bucket', (_Bucket,), {'root': str(tmp_path / 'buckets')})()
  real_fs = backend.fsspec_backend.fs
  monkeypatch.setattr(backend.fsspec_backend, 'fs',
                      lambda path: fake if os.fspath(path).startswith('gs://') else real_fs(path))
  monkeypatch.chdir(tmp_path)  # os.path.abspath('gs://b/x') would be tmp_path/'gs:'/b/x
  yield fake
  assert not (tmp_path / 'gs:').exists(), 'something wrote a gs:// path through the local filesystem'


def test_absolute_keeps_uris_and_makes_local_paths_absolute(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert str(paths.absolute('gs://bucket/kd/teacher')) == 'gs://bucket/kd/teacher'
  assert str(paths.absolute('run/teacher')) == str(tmp_path / 'run' / 'teacher')
  assert str(paths.absolute('/abs/x')) == '/abs/x'


def test_data_files_are_read_from_a_bucket(bucket, tiny_mnist_dir):
  shutil.copytree(tiny_mnist_dir, bucket.local('gs://data/mnist'))  # .gz and plain IDX files
  splits = mnist_data.load_idx_dir('gs://data/mnist')
  local = mnist_data.load_idx_dir(tiny_mnist_dir)
  np.testing.assert_array_equal(splits['train'].images, local['train'].images)
  np.testing.assert_array_equal(splits['test'].labels, local['test'].labels)
  with pytest.raises(FileNotFoundError, match='gs://data/none'):
    mnist_data.load_idx_dir('gs://data/none')

  epath.Path('gs://data/sva/numpred.val').write_text('VBZ\tthe dog near the cars\nVBP\tthe dogs\n')
  examples = sva_data.read_numpred('gs://data/sva/numpred.val')
  assert examples.labels.tolist() == [0, 1]
  vocab = sva_data.Vocab.build([['the', 'dog']], min_count=1)
  vocab.save('gs://run/vocab.json')
  assert sva_data.Vocab.load('gs://run/vocab.json') == vocab and 'run/vocab.json' in bucket.written


def test_metric_records_in_a_bucket_survive_resume(bucket):
  writer = metric_writer.MetricWriter('gs://run/job', flush_seconds=3600.0)
  for step in (10, 20, 30):
    writer.write('teacher', step, {'loss': 1.0 / step})
  writer.flush()  # what a checkpoint does
  assert len(epath.Path('gs://run/job/metrics.jsonl').read_text().splitlines()) == 3
  writer.close()
  events = list(epath.Path('gs://run/job/tensorboard').glob('events.out.tfevents.*'))
  assert len(events) == 1 and events[0].read_bytes().count(b'teacher/loss') == 3
  resumed = metric_writer.MetricWriter('gs://run/job')  # a resumed run: back to the checkpoint at step 20
  resumed.truncate('teacher', 20)
  resumed.write('teacher', 30, {'loss': 0.5})
  resumed.close()
  records = [json.loads(line) for line in epath.Path('gs://run/job/metrics.jsonl').read_text().splitlines()]
  assert [(r['step'], r['loss']) for r in records] == [(10, 0.1), (20, 0.05), (30, 0.5)]


def test_plots_are_written_to_a_bucket(bucket):
  plt = reports.pyplot()
  fig, ax = plt.subplots()
  ax.plot([0, 1], [1, 0])
  reports.save_figure(fig, 'gs://run/plot.png')
  assert 'run/plot.png' in bucket.written
  assert epath.Path('gs://run/plot.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_the_main_job_with_a_bucket_workdir_data_dir_and_teacher(bucket, tiny_mnist_dir, monkeypatch):
  shutil.copytree(tiny_mnist_dir, bucket.local('gs://data/mnist'))
  managers = []
  real_manager = ocp.CheckpointManager

  def local_manager(directory, *args, **kwargs):
    managers.append(str(directory))
    return real_manager(bucket.local(directory), *args, **kwargs)

  monkeypatch.setattr(ocp, 'CheckpointManager', local_manager)
  config = load_config('smoke', data_dir='gs://data/mnist', **{'data.num_train': 256, 'data.num_test': 100})
  report = main.run(config, 'gs://run/kd')
  assert 'gs://data/mnist' in report['data_source']
  assert {'gs://run/kd/cnn/seed_0', 'gs://run/kd/mlp/seed_0', 'gs://run/kd/cnn_to_mlp/seed_0'} <= set(managers)
  assert {'run/kd/grid.json', 'run/kd/grid.md', 'run/kd/metrics.jsonl'} <= bucket.written
  saved = json.loads(epath.Path('gs://run/kd/grid.json').read_text())
  assert saved['setups']['cnn_to_mlp']['instances'] == report['setups']['cnn_to_mlp']['instances']

  # Offline KD from the teacher in the bucket: nothing is trained for the teacher, the same student results.
  config.models.cnn.checkpoint = 'gs://run/kd/cnn/seed_{seed}'
  offline = main.run(config, 'gs://run/offline')
  for setup in ('cnn', 'cnn_to_mlp'):
    assert offline['setups'][setup]['instances'] == report['setups'][setup]['instances']
  assert not epath.Path('gs://run/offline/cnn').exists()
