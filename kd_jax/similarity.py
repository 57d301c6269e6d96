"""How alike two models are on the same inputs: representational similarity and agreement.

Representations are N×d arrays (logits, or a penultimate layer) of two models on the same N inputs.

* :func:`second_order_cosine` — the paper code's measure: row-normalise each representation, form the N×N cosine
  similarity matrices, row-normalise those and average the row-wise cosines between the two matrices. It compares
  how each model arranges the inputs relative to one another, so it is invariant to rotations and scalings of
  either representation, and needs no common dimension d. Distance = 1 − similarity.
* :func:`linear_cka` — linear centred kernel alignment (Kornblith et al. 2019).
* :func:`agreement` — the fraction of inputs on which two models predict the same class.

The paper computes the measure in batches of the test set and averages over them (``batch_size``): N×N matrices
of the whole test set would not fit in memory.
"""
from typing import Optional

import numpy as np


def _unit_rows(x: np.ndarray) -> np.ndarray:
  norms = np.linalg.norm(x, axis=-1, keepdims=True)
  return x / np.maximum(norms, 1e-12)


def _check_pair(a: np.ndarray, b: np.ndarray):
  if a.ndim != 2 or b.ndim != 2 or len(a) != len(b):
    raise ValueError(f'representations must be N×d arrays of the same N inputs, got shapes {a.shape} and {b.shape}')


def _batched(measure, a, b, batch_size: Optional[int]) -> float:
  """``measure`` on consecutive batches of the inputs, averaged (one batch when ``batch_size`` is None)."""
  _check_pair(a, b)
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  size = batch_size or len(a)
  starts = range(0, len(a), size)
  return float(np.mean([measure(a[i:i + size], b[i:i + size]) for i in starts]))


def second_order_cosine(a: np.ndarray, b: np.ndarray, batch_size: Optional[int] = None) -> float:
  """The paper code's representational similarity (1 for identical arrangements of the inputs)."""

  def measure(x, y):
    cos_x, cos_y = (_unit_rows(_unit_rows(r) @ _unit_rows(r).T) for r in (x, y))
    return np.mean(np.sum(cos_x * cos_y, axis=1))

  return _batched(measure, a, b, batch_size)


def linear_cka(a: np.ndarray, b: np.ndarray, batch_size: Optional[int] = None) -> float:
  """Linear CKA: ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F) of the column-centred X, Y (1 for identical up to rotation/scale)."""

  def measure(x, y):
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    cross = np.linalg.norm(y.T @ x) ** 2
    return cross / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))

  return _batched(measure, a, b, batch_size)


def agreement(logits_a: np.ndarray, logits_b: np.ndarray) -> float:
  """The fraction of inputs on which the two models' top classes are the same."""
  _check_pair(logits_a, logits_b)
  return float(np.mean(logits_a.argmax(-1) == logits_b.argmax(-1)))


MEASURES = {'second_order_cosine': second_order_cosine, 'linear_cka': linear_cka}


def distance_matrix(representations, measure: str = 'second_order_cosine',
                    batch_size: Optional[int] = None) -> np.ndarray:
  """Pairwise distances 1 − similarity between a list of representations of the same inputs (symmetric, 0 diagonal)."""
  if measure not in MEASURES:
    raise ValueError(f'unknown similarity measure {measure!r}; choose one of {sorted(MEASURES)}')
  n = len(representations)
  distances = np.zeros((n, n))
  for i in range(n):
    for j in range(i + 1, n):
      distances[i, j] = distances[j, i] = 1.0 - MEASURES[measure](representations[i], representations[j], batch_size)
  return np.maximum(distances, 0.0)  # rounding can make 1 − similarity of identical inputs slightly negative
