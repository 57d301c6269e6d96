"""Agreement metrics: micro accuracy, accuracy per attractor count and by distance, ECE, perplexity."""
import collections
from typing import Dict, Sequence

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


def majority_form_baseline(train_sentences: Sequence[Sequence[str]], correct: Sequence[str], wrong: Sequence[str],
                           attractors: np.ndarray) -> Dict[str, object]:
  """A model-free baseline for language-model agreement: choose the verb form that occurs more often in the
  training sentences (a tie counts as wrong). Micro accuracy and accuracy per attractor count (0–5), as
  :func:`agreement_metrics` reports them."""
  counts = collections.Counter(word for sentence in train_sentences for word in sentence)
  correct_wins = np.asarray([counts[c] > counts[w] for c, w in zip(correct, wrong)], bool)
  by_attractors = _accuracy_by(np.asarray(attractors), correct_wins, range(MAX_ATTRACTORS + 1))
  return {'count': int(len(correct_wins)), 'accuracy': float(correct_wins.mean()) if len(correct_wins) else 0.0,
          'accuracy_by_attractors': by_attractors}
