"""Agreement metrics: micro accuracy, accuracy per attractor count and by distance, ECE, perplexity."""
from typing import Dict

import numpy as np

from kd_jax import metrics as metrics_lib

MAX_ATTRACTORS = 5
MAX_DISTANCE = 16  # the paper's macro over distances 1..16


def _accuracy_by(values: np.ndarray, correct: np.ndarray, keys) -> Dict[str, float]:
  return {str(k): float(correct[values == k].mean()) for k in keys if np.any(values == k)}


def agreement_metrics(logits: np.ndarray, labels: np.ndarray, attractors: np.ndarray, distances: np.ndarray,
                      num_bins: int = 15) -> Dict[str, object]:
  """Metrics of two-way agreement logits [N, 2] against labels [N].

  ``accuracy`` is micro (all examples). ``accuracy_by_attractors`` covers the
  counts 0–5 present (examples with an unknown count, −1, are left out) and
  ``macro_attractor_accuracy`` is its mean; likewise by subject–verb distance
  1–16 when the data gives distances. ECE uses max-softmax confidence.
  """
  logits, labels = np.asarray(logits), np.asarray(labels)
  if logits.ndim != 2 or logits.shape[0] != len(labels):
    raise ValueError(f'expected logits [N, C] for {len(labels)} labels, got {logits.shape}')
  correct = logits.argmax(-1) == labels
  out = {'count': int(len(labels)), 'accuracy': float(correct.mean()),
         'ece': metrics_lib.expected_calibration_error(logits, labels, num_bins)}
  by_attractors = _accuracy_by(attractors, correct, range(MAX_ATTRACTORS + 1))
  if by_attractors:
    out['accuracy_by_attractors'] = by_attractors
    out['attractor_counts'] = {k: int(np.sum(attractors == int(k))) for k in by_attractors}
    out['macro_attractor_accuracy'] = float(np.mean(list(by_attractors.values())))
  by_distance = _accuracy_by(distances, correct, range(1, MAX_DISTANCE + 1))
  if by_distance:
    out['accuracy_by_distance'] = by_distance
    out['macro_distance_accuracy'] = float(np.mean(list(by_distance.values())))
  return out


def perplexity(total_nll: float, num_tokens: int) -> float:
  """Word-level perplexity exp(Σ NLL / number of target tokens), the end token included."""
  if num_tokens <= 0:
    raise ValueError('perplexity needs at least one target token')
  return float(np.exp(total_nll / num_tokens))
