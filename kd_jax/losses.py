"""Losses as small pure functions of logits, chosen by name in the config.

Every loss built by :func:`get_loss` has the signature
``loss(student_logits, teacher_logits, labels) -> per-example loss [B]``;
the gold-label loss ignores ``teacher_logits``.
"""
import dataclasses
import functools
import math
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy.special import softmax

# How the KD term is scaled: Hinton et al. multiply by T² so that its gradients
# keep their size as T changes; the paper's code divided by T² instead.
KD_SCALES = {'hinton': lambda t: t ** 2, 'paper': lambda t: 1.0 / t ** 2}

LossFn = Callable[[jnp.ndarray, jnp.ndarray, jnp.ndarray], jnp.ndarray]


def cross_entropy(logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
  """Per-example cross-entropy with integer gold labels."""
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def kd_term(student_logits, teacher_logits, temperature: float, scale: str = 'hinton'):
  """KL(softmax(teacher/T) ‖ softmax(student/T)), times the chosen scale.

  The paper's code used the cross-entropy to the soft targets instead; the two
  differ by the teacher's entropy, a constant, so their gradients are equal —
  the KL reads 0 when the student matches. No gradient flows into the teacher.
  """
  log_teacher = jax.nn.log_softmax(jax.lax.stop_gradient(teacher_logits) / temperature, axis=-1)
  log_student = jax.nn.log_softmax(student_logits / temperature, axis=-1)
  kl = optax.losses.kl_divergence_with_log_targets(log_student, log_teacher)
  return KD_SCALES[scale](temperature) * kl


def distillation_loss(student_logits, teacher_logits, labels, *, temperature: float,
                      alpha: float, scale: str = 'hinton'):
  """α·KD(teacher, student; T) + (1 − α)·CE(gold)."""
  loss = alpha * kd_term(student_logits, teacher_logits, temperature, scale)
  if alpha < 1.0:
    loss = loss + (1.0 - alpha) * cross_entropy(student_logits, labels)
  return loss


def check_kd_config(temperature: float, alpha: float, scale: str = 'hinton'):
  if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
    raise ValueError(f'config.kd.temperature must be a finite number > 0, got {temperature!r}')
  if not (isinstance(alpha, (int, float)) and 0.0 <= alpha <= 1.0):
    raise ValueError(f'config.kd.alpha must be a number in [0, 1], got {alpha!r}')
  if scale not in KD_SCALES:
    raise ValueError(f'unknown KD scale {scale!r} (config.kd.scale); choose one of {sorted(KD_SCALES)}')


def _distillation(temperature: float, alpha: float, scale: str) -> LossFn:
  check_kd_config(temperature, alpha, scale)
  return functools.partial(distillation_loss, temperature=temperature, alpha=alpha, scale=scale)


@dataclasses.dataclass(frozen=True)
class LossSpec:
  """A registry entry: ``build(**settings)`` makes the per-example loss from the ``config.kd`` fields it names."""
  build: Callable[..., LossFn]
  kd_fields: Tuple[str, ...] = ()
  uses_teacher: bool = False  # whether the loss reads teacher logits (then the trainer provides them)


# A new loss is one new entry here; its hyperparameters are read from config.kd by name.
LOSSES: Dict[str, LossSpec] = {
    'cross_entropy': LossSpec(lambda: lambda student_logits, teacher_logits, labels: cross_entropy(student_logits,
                                                                                                   labels)),
    'distillation': LossSpec(_distillation, kd_fields=('temperature', 'alpha', 'scale'), uses_teacher=True),
}


def loss_spec(name: str) -> LossSpec:
  if name not in LOSSES:
    raise ValueError(f'unknown loss {name!r}; choose one of {list(LOSSES)}')
  return LOSSES[name]


def get_loss(name: str, kd_config: Optional[Mapping[str, Any]] = None) -> LossFn:
  """The per-example loss called ``name``, built from the ``kd_config`` (``config.kd``) fields it declares."""
  spec = loss_spec(name)
  kd_config = kd_config or {}
  missing = [field for field in spec.kd_fields if field not in kd_config]
  if missing:
    raise ValueError(f'loss {name!r} needs config.kd.{", config.kd.".join(missing)}')
  return spec.build(**{field: kd_config[field] for field in spec.kd_fields})


# ----------------------------------------------------------------------------- control targets

def shuffled_confidence_logits(teacher_logits: np.ndarray, labels: np.ndarray, temperature: float,
                               rng: np.random.Generator) -> np.ndarray:
  """A control for what KD teaches (host side, on cached logits [N, C] of the N training inputs).

  Input i's target gets the teacher's gold-class probability (at ``temperature``) on another training input,
  a random permutation of the inputs; its other classes share the rest in the proportions the teacher gave them
  on input i. The targets' softness and error rate are the teacher's — their mean p(gold), the fraction below
  any threshold — but no longer *which* inputs the teacher doubts. Returns logits whose softmax at
  ``temperature`` is that target.
  """
  probs = softmax(np.asarray(teacher_logits, np.float64) / temperature, axis=-1)
  rows = np.arange(len(labels))
  p_gold = probs[rows, labels]
  others = probs.copy()
  others[rows, labels] = 0.0
  # Where the teacher put all its mass on gold (0 left in float64), the rest is split evenly.
  others = np.where(others.sum(-1, keepdims=True) > 0, others, 1.0)
  others[rows, labels] = 0.0
  others /= others.sum(-1, keepdims=True)
  new_p_gold = p_gold[rng.permutation(len(labels))]
  targets = others * (1.0 - new_p_gold)[:, None]
  targets[rows, labels] = new_p_gold
  return (temperature * np.log(np.maximum(targets, 1e-30))).astype(np.float32)


# What the KD student learns from cached teacher logits (``config.kd.targets``): the teacher's own, or a control.
TARGETS = {
    'teacher': None,
    'shuffled_confidence': shuffled_confidence_logits,
}
