"""Evaluation metrics on logits (numpy, host side)."""
from typing import Dict, Optional

import numpy as np
from scipy.special import softmax


def sample_std(values, axis=None):
  """Standard deviation over seeds/instances with ddof = 1; 0 when there is only one."""
  values = np.asarray(values, np.float64)
  n = values.size if axis is None else values.shape[axis]
  return values.std(axis=axis, ddof=1) if n > 1 else np.zeros_like(values.mean(axis=axis))


def check_finite(outputs: np.ndarray, what: str) -> np.ndarray:
  """``outputs`` when every value is finite; otherwise a FloatingPointError naming ``what`` (e.g. the model and
  test set): no metric, report or JSON is ever computed from NaN or inf."""
  bad = ~np.isfinite(np.asarray(outputs))
  if bad.any():
    rows = int(bad.reshape(len(bad), -1).any(-1).sum()) if bad.ndim else 1
    raise FloatingPointError(f'{what}: the model gave non-finite outputs (NaN or inf) on {rows} of {len(bad)} '
                             'inputs; its weights are likely damaged or diverged: no numbers are reported from it')
  return outputs


def teacher_targets(teacher_logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0,
                    weights: Optional[np.ndarray] = None) -> Dict[str, float]:
  """What a student is taught: softmax(teacher_logits / T) on the training inputs, against the gold labels.

  ``p_gold``: the mean probability of the gold class; ``below_0.9``: the fraction of examples whose gold
  probability is below 0.9; ``entropy``: the mean entropy (nats). A ``p_gold`` near 1 with ``below_0.9`` near 0
  means the targets are the labels: KD then cannot transfer more than gold-label training does. Language models:
  labels and ``weights`` [..., L] per position, the means over the positions of weight 1.
  """
  return summarise_targets(*target_probabilities(teacher_logits, labels, temperature), weights)


def target_probabilities(teacher_logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0):
  """(p(gold), entropy in nats) of softmax(teacher_logits / T), both of the labels' shape."""
  probs = softmax(np.asarray(teacher_logits, np.float64) / temperature, axis=-1)
  p_gold = np.take_along_axis(probs, np.asarray(labels)[..., None].astype(np.int64), axis=-1)[..., 0]
  return p_gold, -np.sum(probs * np.log(np.maximum(probs, 1e-30)), axis=-1)


def summarise_targets(p_gold: np.ndarray, entropy: np.ndarray, weights: Optional[np.ndarray] = None):
  """The means of :func:`teacher_targets` over the entries of weight 1 (all without ``weights``)."""
  w = np.ones_like(p_gold) if weights is None else np.broadcast_to(np.asarray(weights, np.float64), p_gold.shape)
  mean = lambda x: float(np.sum(w * x) / np.sum(w))
  return {'p_gold': mean(p_gold), 'below_0.9': mean(p_gold < 0.9), 'entropy': mean(entropy)}


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
  return float(np.mean(np.argmax(logits, axis=-1) == labels))


def reliability_bins(logits: np.ndarray, labels: np.ndarray, num_bins: int = 15) -> Dict[str, np.ndarray]:
  """Per equal-width confidence bin: example count, accuracy and mean max-softmax confidence.

  Bin b holds the examples with confidence in (b/num_bins, (b+1)/num_bins].
  Empty bins have accuracy and confidence 0.
  """
  if num_bins < 1:
    raise ValueError(f'ECE needs at least one bin, got num_bins={num_bins}')
  probs = softmax(np.asarray(logits, np.float64), axis=-1)
  confidence = probs.max(axis=-1)
  correct = (probs.argmax(axis=-1) == labels).astype(np.float64)
  bins = np.clip(np.ceil(confidence * num_bins).astype(int) - 1, 0, num_bins - 1)
  count = np.bincount(bins, minlength=num_bins).astype(np.float64)
  safe = np.maximum(count, 1)
  return {'count': count,
          'accuracy': np.bincount(bins, correct, minlength=num_bins) / safe,
          'confidence': np.bincount(bins, confidence, minlength=num_bins) / safe}


def ece_from_bins(bins: Dict[str, np.ndarray]) -> float:
  """ECE = Σ_b (n_b / N) · |accuracy_b − mean confidence_b|."""
  return float(np.sum(bins['count'] * np.abs(bins['accuracy'] - bins['confidence'])) / np.sum(bins['count']))


def expected_calibration_error(logits: np.ndarray, labels: np.ndarray, num_bins: int = 15) -> float:
  """ECE over equal-width bins of max-softmax confidence (see :func:`reliability_bins`)."""
  return ece_from_bins(reliability_bins(logits, labels, num_bins))


def classification_metrics(logits: np.ndarray, labels: np.ndarray, num_bins: int = 15) -> dict:
  return {'accuracy': accuracy(logits, labels),
          'ece': expected_calibration_error(logits, labels, num_bins)}


def reliability_metrics(logits: np.ndarray, labels: np.ndarray, num_bins: int = 15) -> dict:
  """Accuracy and ECE with the reliability bins behind them (as lists, ready for JSON)."""
  bins = reliability_bins(logits, labels, num_bins)
  return {'accuracy': float(np.sum(bins['count'] * bins['accuracy']) / np.sum(bins['count'])),
          'ece': ece_from_bins(bins),
          'reliability': {key: value.tolist() for key, value in bins.items()}}
