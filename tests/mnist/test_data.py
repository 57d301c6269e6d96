import os

import chex
import numpy as np
import pytest

from conftest import write_idx
from kd_jax.mnist import data


@pytest.mark.parametrize('name', ['x-idx3-ubyte', 'x-idx3-ubyte.gz'])
def test_idx_round_trip(tmp_path, name):
  array = np.random.default_rng(0).integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
  write_idx(str(tmp_path / name), array)
  chex.assert_trees_all_equal(data.read_idx(str(tmp_path / name)), array)


def test_idx_rejects_bad_files(tmp_path):
  (tmp_path / 'bad').write_bytes(b'\x12\x34\x08\x01' + b'\0' * 8)
  with pytest.raises(ValueError, match='not an IDX file'):
    data.read_idx(str(tmp_path / 'bad'))
  (tmp_path / 'short').write_bytes(bytes([0, 0, 8, 1]) + (10).to_bytes(4, 'big') + b'\1\2')
  with pytest.raises(ValueError, match='holds 2 values'):
    data.read_idx(str(tmp_path / 'short'))


def test_idx_dir_loads_splits(tiny_mnist_dir):
  splits = data.load_idx_dir(tiny_mnist_dir)
  chex.assert_shape(splits['train'].images, (1000, 28, 28, 1))
  chex.assert_shape(splits['test'].images, (200, 28, 28, 1))
  assert splits['train'].images.dtype == np.float32 and splits['train'].labels.dtype == np.int32
  assert 0.0 <= splits['test'].images.min() and splits['test'].images.max() <= 1.0


def test_idx_dir_errors_name_the_problem(tmp_path, tiny_mnist_dir):
  with pytest.raises(FileNotFoundError, match='does not exist'):
    data.load_idx_dir(str(tmp_path / 'nowhere'))
  partial = tmp_path / 'partial'
  partial.mkdir()
  for name in os.listdir(tiny_mnist_dir):
    if name.startswith('train'):
      (partial / name).write_bytes(open(os.path.join(tiny_mnist_dir, name), 'rb').read())
  with pytest.raises(FileNotFoundError, match='lacks t10k-images-idx3-ubyte.*t10k-labels-idx1-ubyte'):
    data.load_idx_dir(str(partial))


def test_scale_of_a_full_white_image():
  # Output (r, c) samples the input at (r − 13.5)/0.7 + 13.5: rows 5..22 fall inside the image;
  # row 4 samples −1/14, i.e. 13/14 of the way from the zero border to the first pixel.
  out = data.mnist_c_scale(np.full((1, 28, 28), 255, np.uint8))[0]
  assert out[5:23, 5:23].min() == 255
  assert out[4, 13] == round(255 * 13 / 14) and out[13, 4] == round(255 * 13 / 14)
  assert out[:4].max() == 0 and out[24:].max() == 0 and out[:, :4].max() == 0


def test_scale_of_a_ramp_is_linear_inside():
  ramp = np.tile((np.arange(28) * 9).astype(np.uint8), (28, 1))[None]  # in[r, c] = 9c
  out = data.mnist_c_scale(ramp)[0]
  cols = np.arange(5, 23)
  np.testing.assert_array_equal(out[10, cols], np.round(9 * ((cols - 13.5) / 0.7 + 13.5)).astype(np.uint8))


def test_translate_moves_a_pixel_and_fills_zeros():
  image = np.zeros((2, 28, 28), np.uint8)
  image[0, 10, 12] = 200
  image[1] = 255
  out = data.mnist_c_translate(image, np.array([[3, -3], [3, 3]]))
  # out[r, c] = in[r + dy, c + dx]: the pixel at (10, 12) lands on (7, 15).
  assert out[0, 7, 15] == 200 and out[0].sum() == 200
  assert out[1, :25, :25].min() == 255 and out[1, 25:].max() == 0 and out[1, :, 25:].max() == 0


def test_translate_offsets_are_diagonal_and_seeded():
  offsets = data.translate_offsets(1000, seed=0)
  assert set(np.unique(offsets)) == {-3, 3}
  assert len({tuple(o) for o in offsets}) == 4
  chex.assert_trees_all_equal(offsets, data.translate_offsets(1000, seed=0))
  assert not np.array_equal(offsets, data.translate_offsets(1000, seed=1))


def _skimage_warp(images, matrices):
  """MNIST-C's own computation of an affine corruption: skimage's warp with the inverse map, the translation
  keeping the centre (13.5, 13.5) fixed; clipped, ×255, rounded."""
  from skimage import transform  # pylint: disable=g-import-not-at-top
  out = []
  for image, matrix in zip(images, matrices):
    full = np.eye(3)
    full[:2, :2], full[:2, 2] = matrix, 13.5 * (1 - matrix.sum(axis=1))
    warped = transform.warp(image / 255.0, inverse_map=transform.AffineTransform(matrix=full))
    out.append(np.round(np.clip(warped, 0, 1) * 255).astype(np.uint8))
  return np.stack(out)


def test_shear_and_rotate_equal_mnist_c_computed_with_skimage(tiny_mnist_dir):
  from skimage import transform  # pylint: disable=g-import-not-at-top
  images = data._to_uint8(data.load_idx_dir(tiny_mnist_dir)['test'].images)  # 200 real digits
  signs = data.corruption_signs(len(images), 0, 'mnist_shear')
  assert set(np.unique(signs)) == {-1, 1}
  # Shear: the matrix skimage's AffineTransform(shear=c) had in 2019, when MNIST-C was made.
  shear = [np.array([[1, -np.sin(0.4 * s)], [0, np.cos(0.4 * s)]]) for s in signs]
  np.testing.assert_array_equal(data.mnist_c_shear(images, signs), _skimage_warp(images, shear))
  rotation = [transform.AffineTransform(rotation=0.4 * s).params[:2, :2] for s in signs]
  np.testing.assert_array_equal(data.mnist_c_rotate(images, signs), _skimage_warp(images, rotation))
  assert not np.array_equal(data.mnist_c_rotate(images, signs), data.mnist_c_rotate(images, -signs))


def test_rotate_turns_a_bar_about_the_centre():
  bar = np.zeros((1, 28, 28), np.uint8)
  bar[0, 4:24, 13:15] = 255  # vertical, through the centre
  turned = data.mnist_c_rotate(bar, np.array([1]))[0]
  rows, cols = np.nonzero(turned > 127)
  slope = np.polyfit(rows, cols, 1)[0]  # columns per row along the bar
  assert abs(np.arctan(slope)) == pytest.approx(0.4, abs=0.05)
  assert abs(rows.mean() - 13.5) < 0.5 and abs(cols.mean() - 13.5) < 0.5


def test_stripe_inverts_the_outer_columns_only():
  images = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
  striped = data.mnist_c_stripe(images)
  outer = np.zeros(28, bool)
  outer[:7] = outer[21:] = True
  np.testing.assert_array_equal(striped, np.where(outer[None, None, :], 255 - images, images))
  np.testing.assert_array_equal(data.mnist_c_stripe(striped), images)


def test_held_out_sets_are_seeded_and_keep_the_labels(tiny_mnist_dir):
  test = data.load_idx_dir(tiny_mnist_dir)['test']
  held_out = data.held_out_corruptions(test, seed=0)
  assert tuple(held_out) == data.HELD_OUT_SETS
  for name, split in held_out.items():
    chex.assert_shape(split.images, test.images.shape)
    np.testing.assert_array_equal(split.labels, test.labels)
    chex.assert_trees_all_equal(split.images, data.held_out_corruptions(test, seed=0)[name].images)
  assert not np.array_equal(held_out['mnist_rotate'].images, data.held_out_corruptions(test, 1)['mnist_rotate'].images)
  assert not np.array_equal(data.corruption_signs(200, 0, 'mnist_shear'), data.corruption_signs(200, 0, 'mnist_rotate'))


def test_offline_without_data_falls_back_to_the_labelled_demo_sample(monkeypatch):
  monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
  mnist = data.load_mnist('', online_check=lambda: False)
  assert mnist.demo_sample and 'DEMO SAMPLE' in mnist.source
  assert len(mnist.train) == 4000
  assert set(mnist.test) == set(data.TEST_SETS) and all(len(s) == 1000 for s in mnist.test.values())
  # The regenerated test sets really are transformed copies of the MNIST test images.
  assert not np.array_equal(mnist.test['mnist'].images, mnist.test['mnist_translate'].images)


def test_environment_variable_selects_the_idx_dir(monkeypatch, tiny_mnist_dir):
  monkeypatch.setenv(data.DATA_DIR_ENV, tiny_mnist_dir)
  mnist = data.load_mnist('', online_check=lambda: pytest.fail('must not probe the network'))
  assert not mnist.demo_sample and tiny_mnist_dir in mnist.source
  assert len(mnist.train) == 1000 and len(mnist.test['mnist_scale']) == 200


def test_full_mnist(full_mnist_dir):
  mnist = data.load_mnist(full_mnist_dir)
  assert len(mnist.train) == 60_000 and len(mnist.test['mnist']) == 10_000
  np.testing.assert_array_equal(np.bincount(mnist.test['mnist'].labels),
                                [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
