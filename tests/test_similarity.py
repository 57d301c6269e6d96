import chex
import numpy as np
from scipy.stats import ortho_group
import pytest

from kd_jax import similarity

RNG = np.random.default_rng(0)
X = RNG.normal(size=(200, 20))
ROTATION = ortho_group.rvs(20, random_state=1)
MEASURES = [similarity.second_order_cosine, similarity.linear_cka]


@pytest.mark.parametrize('measure', MEASURES)
def test_identical_rotated_scaled_and_zero_padded_representations_are_the_same(measure):
  for same in (X, X @ ROTATION, 3.7 * X, np.concatenate([X, np.zeros((200, 5))], axis=1)):
    np.testing.assert_allclose(measure(X, same), 1.0, atol=1e-9)
    np.testing.assert_allclose(measure(same, X), 1.0, atol=1e-9)


def test_independent_random_representations_match_the_expected_values():
  # Two independent N×d Gaussian arrays: each row's cosine row has 1 on the diagonal and N-1 entries of variance
  # 1/d, so the second-order cosine is ≈ 1 / (1 + (N-1)/d) = 0.0913 for N = 200, d = 20.
  values = [similarity.second_order_cosine(X, np.random.default_rng(s).normal(size=(200, 20))) for s in range(1, 6)]
  np.testing.assert_allclose(np.mean(values), 1 / (1 + 199 / 20), rtol=0.05)
  # Linear CKA of independent data: E ≈ d / N-ish, far below 1 (0.10 measured for N = 200, d = 20).
  cka = similarity.linear_cka(X, np.random.default_rng(1).normal(size=(200, 20)))
  assert 0.0 < cka < 0.2


def test_a_linear_function_of_the_representation_lies_between():
  stretch = X @ np.diag(np.linspace(0.2, 5.0, 20))  # a linear, not orthogonal, map
  independent = np.random.default_rng(1).normal(size=(200, 20))
  for measure in MEASURES:
    assert measure(X, independent) < measure(X, stretch) < 1.0 - 1e-3
  # Centring makes CKA blind to a shift of every input; the paper's measure is not (it compares directions).
  np.testing.assert_allclose(similarity.linear_cka(X, X + 10.0), 1.0, atol=1e-9)
  assert similarity.second_order_cosine(X, X + 10.0) < 0.5


def test_batches_average_the_measure_over_consecutive_slices():
  other = X @ np.diag(np.linspace(0.2, 5.0, 20))
  halves = [similarity.second_order_cosine(X[i:i + 100], other[i:i + 100]) for i in (0, 100)]
  np.testing.assert_allclose(similarity.second_order_cosine(X, other, batch_size=100), np.mean(halves))
  assert similarity.second_order_cosine(X, other, batch_size=100) != similarity.second_order_cosine(X, other)


def test_agreement_counts_the_same_top_class():
  logits = RNG.normal(size=(100, 10))
  assert similarity.agreement(logits, logits) == 1.0
  assert similarity.agreement(logits, 2 * logits + 1) == 1.0
  shuffled = logits[:, ::-1]
  np.testing.assert_allclose(similarity.agreement(logits, shuffled),
                             np.mean(logits.argmax(-1) == shuffled.argmax(-1)))
  assert similarity.agreement(logits, shuffled) < 0.3


def test_distance_matrix_is_symmetric_with_a_zero_diagonal():
  reps = [X, X @ ROTATION, np.random.default_rng(1).normal(size=(200, 20))]
  distances = similarity.distance_matrix(reps)
  chex.assert_shape(distances, (3, 3))
  chex.assert_trees_all_close(distances, distances.T)
  np.testing.assert_allclose(np.diag(distances), 0.0)
  np.testing.assert_allclose(distances[0, 1], 0.0, atol=1e-9)
  assert distances[0, 2] > 0.8
  with pytest.raises(ValueError, match="unknown similarity measure 'cca'"):
    similarity.distance_matrix(reps, 'cca')
  with pytest.raises(ValueError, match='same N inputs'):
    similarity.linear_cka(X, X[:10])
