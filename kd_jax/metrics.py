"""Evaluation metrics on logits (numpy, host side)."""
import numpy as np
from scipy.special import softmax


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
  return float(np.mean(np.argmax(logits, axis=-1) == labels))


def expected_calibration_error(logits: np.ndarray, labels: np.ndarray, num_bins: int = 15) -> float:
  """ECE over equal-width bins of max-softmax confidence.

  Bin b holds the examples with confidence in (b/num_bins, (b+1)/num_bins];
  ECE = Σ_b (n_b / N) · |accuracy_b − mean confidence_b|.
  """
  if num_bins < 1:
    raise ValueError(f'ECE needs at least one bin, got num_bins={num_bins}')
  probs = softmax(np.asarray(logits, np.float64), axis=-1)
  confidence = probs.max(axis=-1)
  correct = (probs.argmax(axis=-1) == labels).astype(np.float64)
  bins = np.clip(np.ceil(confidence * num_bins).astype(int) - 1, 0, num_bins - 1)
  ece = 0.0
  for b in range(num_bins):
    in_bin = bins == b
    if in_bin.any():
      ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
  return float(ece)


def classification_metrics(logits: np.ndarray, labels: np.ndarray, num_bins: int = 15) -> dict:
  return {'accuracy': accuracy(logits, labels),
          'ece': expected_calibration_error(logits, labels, num_bins)}
