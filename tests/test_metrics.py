import numpy as np
import pytest

from kd_jax import metrics


def _logits(probs):
  return np.log(np.asarray(probs))


def test_ece_hand_computed():
  # Confidences 0.85 (right), 0.85 (wrong), 0.65 (right), 0.55 (right); 10 bins.
  logits = _logits([[0.85, 0.15], [0.85, 0.15], [0.35, 0.65], [0.55, 0.45]])
  labels = np.array([0, 1, 1, 0])
  # Bin (0.8, 0.9]: 2 examples, accuracy 1/2, confidence 0.85 -> 0.5·0.35;
  # bin (0.6, 0.7]: 0.25·|1 − 0.65|; bin (0.5, 0.6]: 0.25·|1 − 0.55|.
  expected = 0.5 * 0.35 + 0.25 * 0.35 + 0.25 * 0.45
  np.testing.assert_allclose(metrics.expected_calibration_error(logits, labels, num_bins=10), expected, rtol=1e-9)
  # One bin: |overall accuracy − mean confidence|.
  np.testing.assert_allclose(metrics.expected_calibration_error(logits, labels, num_bins=1),
                             abs(0.75 - (0.85 + 0.85 + 0.65 + 0.55) / 4), rtol=1e-9)
  assert metrics.accuracy(logits, labels) == 0.75


def test_ece_zero_when_calibrated():
  # Four examples at confidence 0.75, three of them right.
  logits = _logits([[0.75, 0.25]] * 4)
  assert metrics.expected_calibration_error(logits, np.array([0, 0, 0, 1])) == pytest.approx(0.0, abs=1e-12)
  assert metrics.expected_calibration_error(logits, np.array([1, 1, 1, 1])) == pytest.approx(0.75)


def test_ece_needs_a_bin():
  with pytest.raises(ValueError, match='at least one bin'):
    metrics.expected_calibration_error(np.zeros((1, 2)), np.zeros(1, int), num_bins=0)


def test_teacher_targets_on_known_logits():
  labels = np.array([0, 1, 2, 3])
  confident = 50.0 * np.eye(4)[labels]  # the labels, as logits
  stats = metrics.teacher_targets(confident, labels)
  np.testing.assert_allclose(stats['p_gold'], 1.0)
  assert stats['below_0.9'] == 0.0 and stats['entropy'] < 1e-6
  uniform = metrics.teacher_targets(np.zeros((4, 4)), labels)
  np.testing.assert_allclose([uniform['p_gold'], uniform['below_0.9'], uniform['entropy']], [0.25, 1.0, np.log(4)])
  # A temperature softens the same logits: at T = 25, p(gold) = e² / (e² + 3).
  soft = metrics.teacher_targets(confident, labels, temperature=25.0)
  np.testing.assert_allclose(soft['p_gold'], np.exp(2) / (np.exp(2) + 3))
  assert soft['below_0.9'] == 1.0
  # Stacked instances [K, N, C] with labels broadcast to [K, N].
  both = metrics.teacher_targets(np.stack([confident, np.zeros((4, 4))]), np.stack([labels, labels]))
  np.testing.assert_allclose(both['p_gold'], (1.0 + 0.25) / 2)
  # Per-position targets [N, L] count only the positions of weight 1 (a language model's padding has 0).
  positions = metrics.teacher_targets(np.stack([confident, np.zeros((4, 4))], axis=1), np.stack([labels] * 2, 1),
                                      weights=np.array([[1, 0]] * 3 + [[1, 1]]))
  np.testing.assert_allclose([positions['p_gold'], positions['below_0.9']], [(4 + 0.25) / 5, 1 / 5])
