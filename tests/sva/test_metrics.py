"""Agreement metrics against hand-computed values."""
import numpy as np
import pytest

from kd_jax.sva import metrics as sva_metrics


def test_agreement_metrics_by_attractors_and_distance():
  # Predictions: class 1 where the first logit is lower.
  logits = np.array([[0., 1.], [0., 1.], [1., 0.], [1., 0.], [0., 1.], [1., 0.]])
  labels = np.array([1, 0, 0, 1, 1, 0])  # correct: T F T F T T
  attractors = np.array([0, 0, 1, 1, 2, -1])  # -1: unknown, micro only
  distances = np.array([1, 1, 2, 3, 3, -1])
  out = sva_metrics.agreement_metrics(logits, labels, attractors, distances)
  assert out['count'] == 6 and out['accuracy'] == pytest.approx(4 / 6)
  assert out['accuracy_by_attractors'] == {'0': 0.5, '1': 0.5, '2': 1.0}
  assert out['attractor_counts'] == {'0': 2, '1': 2, '2': 1}
  assert out['macro_attractor_accuracy'] == pytest.approx((0.5 + 0.5 + 1.0) / 3)
  assert out['accuracy_by_distance'] == {'1': 0.5, '2': 1.0, '3': 0.5}
  assert out['macro_distance_accuracy'] == pytest.approx(2 / 3)
  # Every prediction has confidence sigmoid(1); one bin: |accuracy − confidence|.
  assert out['ece'] == pytest.approx(abs(4 / 6 - 1 / (1 + np.exp(-1.0))))


def test_agreement_metrics_without_attractor_or_distance_information():
  out = sva_metrics.agreement_metrics(np.array([[2., 0.]]), np.array([0]), np.array([-1]), np.array([-1]))
  assert out['accuracy'] == 1.0
  assert 'accuracy_by_attractors' not in out and 'accuracy_by_distance' not in out
  with pytest.raises(ValueError, match=r'expected logits \[N, C\] for 2 labels'):
    sva_metrics.agreement_metrics(np.zeros((3, 2)), np.zeros(2), np.zeros(2), np.zeros(2))


def test_perplexity():
  # Uniform predictions over 50 words: perplexity 50.
  assert sva_metrics.perplexity(10 * np.log(50.0), 10) == pytest.approx(50.0)
  with pytest.raises(ValueError, match='at least one target token'):
    sva_metrics.perplexity(0.0, 0)


def test_majority_form_baseline_picks_the_form_more_frequent_in_training():
  train = [['the', 'dog', 'is', 'big'], ['it', 'is'], ['they', 'are'], ['he', 'runs']]  # is 2, are 1, runs 1, run 0
  result = sva_metrics.majority_form_baseline(train, correct=['is', 'are', 'run', 'walks'],
                                              wrong=['are', 'is', 'runs', 'walk'], attractors=np.array([0, 1, 1, 2]))
  # 'is' beats 'are' (right), 'are' loses to 'is' (wrong), 'run' loses to 'runs' (wrong), walks/walk tie (wrong).
  assert result == {'count': 4, 'accuracy': 0.25, 'accuracy_by_attractors': {'0': 1.0, '1': 0.0, '2': 0.0}}
