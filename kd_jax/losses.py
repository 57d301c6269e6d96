"""Losses as small pure functions of logits, chosen by name in the config.

Every loss built by :func:`get_loss` is a :class:`Loss`: ``loss(student_logits, teacher_logits, labels) ->
per-example loss [B]`` (a feature objective also takes both models' penultimate features; with a warm-up the step
passes ``teacher_weight``); the gold-label loss ignores ``teacher_logits``. A teacher objective is its teacher term
(:func:`teacher_objective`): the KD scale, the gold labels and a warm-up are applied to it in one place.
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

from kd_jax import config_lib

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
  return KD_SCALES[scale](temperature) * _kd(student_logits, teacher_logits, None, temperature=temperature)


def _kd(student_logits, teacher_logits, labels, *, temperature: float):
  """KD's teacher term, unscaled: KL(softmax(teacher/T) ‖ softmax(student/T)) per example."""
  del labels
  log_teacher = jax.nn.log_softmax(jax.lax.stop_gradient(teacher_logits) / temperature, axis=-1)
  log_student = jax.nn.log_softmax(student_logits / temperature, axis=-1)
  return optax.losses.kl_divergence_with_log_targets(log_student, log_teacher)


def with_gold(term, student_logits, labels, alpha: float, gold_weight: float = 0.0, teacher_weight=None):
  """α·term + (1 − α)·CE(gold), or term + gold_weight·CE(gold): how every teacher objective adds the gold labels —
  mixed in (Hinton's α) or beside a teacher term at full weight (DKD's, DIST's and logit standardisation's papers;
  :func:`check_kd_config` refuses both at once). ``teacher_weight`` (a scalar from the step) scales the teacher term
  during a warm-up."""
  if teacher_weight is not None:
    term = teacher_weight * term
  if alpha < 1.0:
    term = alpha * term + (1.0 - alpha) * cross_entropy(student_logits, labels)
  elif gold_weight:
    term = term + gold_weight * cross_entropy(student_logits, labels)
  return term


def _normal_float32(value: float) -> bool:
  """Whether ``value`` survives as a normal float32 (the losses compute in float32): neither inf nor flushed to 0."""
  return math.isfinite(value) and float(np.finfo(np.float32).tiny) <= abs(value) <= config_lib.FLOAT32_MAX


def _check_weight(field: str, value):
  """``config.kd.<field>``, a weight: a finite float32 number ≥ 0."""
  if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= config_lib.FLOAT32_MAX):
    raise ValueError(f'config.kd.{field} must be a finite number ≥ 0 (at most {config_lib.FLOAT32_MAX:.3g}, '
                     f'float32), got {value!r}')


def check_kd_config(temperature: float, alpha: float, scale: str = 'hinton', gold_weight: float = 0.0):
  if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
    raise ValueError(f'config.kd.temperature must be a finite number > 0, got {temperature!r}')
  if not (isinstance(alpha, (int, float)) and 0.0 <= alpha <= 1.0):
    raise ValueError(f'config.kd.alpha must be a number in [0, 1], got {alpha!r}')
  if scale not in KD_SCALES:
    raise ValueError(f'unknown KD scale {scale!r} (config.kd.scale); choose one of {sorted(KD_SCALES)}')
  # Logits are divided by T and the KD term multiplied by T² (or 1/T²), in float32: both must stay normal numbers.
  # (T itself first: beyond float32, T² may overflow even a Python float.)
  if not (_normal_float32(temperature) and _normal_float32(1.0 / temperature)
          and _normal_float32(KD_SCALES[scale](float(temperature)))):
    factor = (f'its scale {scale!r} gives {KD_SCALES[scale](float(temperature)):.3g}' if _normal_float32(temperature)
              else 'beyond float32 itself')
    raise ValueError(f'config.kd.temperature={temperature!r} is out of float32 range for the KD term ({factor}): '
                     'use a temperature near 1–20')
  _check_weight('gold_weight', gold_weight)
  if gold_weight and alpha < 1.0:
    raise ValueError(f'config.kd.gold_weight={gold_weight!r} adds the gold labels beside a teacher term at full '
                     f'weight, and config.kd.alpha={alpha!r} < 1 mixes them in already: set one of the two (alpha=1.0, '
                     'or gold_weight=0.0)')


def dkd_terms(student_logits, teacher_logits, labels, temperature: float):
  """Decoupled KD's two parts per example (Zhao et al. 2022, their eqs. 1–3): TCKD, the KL between the teacher's and
  the student's binary (gold, not gold) probabilities, and NCKD, the KL between their distributions over the
  non-gold classes (renormalised). Classic KD = TCKD + (1 − p_gold^teacher)·NCKD. Computed in log space; the gold
  logit is pushed out of the non-gold softmax by subtracting 1000 from it (as the authors' mdistiller code)."""
  teacher_logits = jax.lax.stop_gradient(teacher_logits)
  gold = jax.nn.one_hot(labels, student_logits.shape[-1], dtype=bool)

  def binary_and_rest(logits):
    log_p = jax.nn.log_softmax(logits / temperature, axis=-1)
    log_gold = jnp.sum(jnp.where(gold, log_p, 0.0), axis=-1)
    log_rest = jax.nn.logsumexp(jnp.where(gold, -jnp.inf, log_p), axis=-1)
    log_non_gold = jax.nn.log_softmax(logits / temperature - 1000.0 * gold, axis=-1)
    return jnp.stack([log_gold, log_rest], axis=-1), log_non_gold

  binary_s, non_gold_s = binary_and_rest(student_logits)
  binary_t, non_gold_t = binary_and_rest(teacher_logits)
  tckd = optax.losses.kl_divergence_with_log_targets(binary_s, binary_t)
  nckd = optax.losses.kl_divergence_with_log_targets(non_gold_s, non_gold_t)
  return tckd, nckd


def _dkd(student_logits, teacher_logits, labels, *, temperature: float, dkd_target_weight: float,
         dkd_nontarget_weight: float):
  """DKD's teacher term, unscaled: w_t·TCKD + w_n·NCKD (Zhao et al.: × T², w_t = 1, w_n = 8 on CIFAR)."""
  tckd, nckd = dkd_terms(student_logits, teacher_logits, labels, temperature)
  return dkd_target_weight * tckd + dkd_nontarget_weight * nckd


def _pearson_rows(a, b, eps: float = 1e-8):
  """Pearson correlation of each row of ``a`` with the same row of ``b`` (DIST's, with its eps)."""
  a, b = a - a.mean(-1, keepdims=True), b - b.mean(-1, keepdims=True)
  return (a * b).sum(-1) / (jnp.linalg.norm(a, axis=-1) * jnp.linalg.norm(b, axis=-1) + eps)


def dist_terms(student_logits, teacher_logits, temperature: float):
  """DIST's two relations (Huang et al. 2022): per example, 1 − Pearson(student, teacher) over the classes of its
  softened probabilities (inter-class); for the batch, the mean over classes of 1 − Pearson over the examples
  (intra-class: a property of the whole batch, the same for each example)."""
  p_s = jax.nn.softmax(student_logits / temperature, axis=-1)
  p_t = jax.nn.softmax(jax.lax.stop_gradient(teacher_logits) / temperature, axis=-1)
  inter = 1.0 - _pearson_rows(p_s, p_t)
  intra = jnp.mean(1.0 - _pearson_rows(p_s.T, p_t.T))
  return inter, intra


def _dist(student_logits, teacher_logits, labels, *, temperature: float, dist_inter_weight: float,
          dist_intra_weight: float):
  """DIST's teacher term, unscaled: β·inter + γ·intra (Huang et al.: × τ², β = γ = 1 on ImageNet); the batch's mean
  of these per-example values is DIST's loss of the batch."""
  del labels
  inter, intra = dist_terms(student_logits, teacher_logits, temperature)
  return dist_inter_weight * inter + dist_intra_weight * intra


def standardise(logits, eps: float = 1e-7):
  """Each example's logits z-scored over the classes (the sample standard deviation, as torch's ``std``)."""
  mean = logits.mean(-1, keepdims=True)
  return (logits - mean) / (jnp.std(logits, axis=-1, keepdims=True, ddof=1) + eps)


def _standardised(student_logits, teacher_logits, labels, *, temperature: float, standardised_weight: float):
  """Logit standardisation's teacher term, unscaled (Sun et al. 2024): KD on z-scored logits — the student matches
  the teacher's logits' shape, not their range — times its weight (its gold CE is on the raw logits)."""
  return standardised_weight * _kd(standardise(student_logits), standardise(teacher_logits), labels,
                                   temperature=temperature)


# ----------------------------------------------------------------------------- feature objectives

def _huber(x):
  """Smooth L1 with threshold 1 (the l_δ of RKD; torch's smooth_l1_loss)."""
  return optax.losses.huber_loss(x, delta=1.0)


def rkd_terms(student_features, teacher_features, eps: float = 1e-12):
  """Relational KD (Park et al. 2019) on a batch's features [B, D]: the distance term — pairwise distances, each
  model's divided by its mean over all pairs (the diagonal included, as the paper's μ over X²) — and the angle term —
  for every triplet (i, j, k) the cosine of the angle at j between e_ij = normalise(f_i − f_j) and e_kj (0 where
  i = j or k = j) — each the mean smooth-L1 difference between student and teacher over all pairs / triplets."""
  def distances(f):
    squared = jnp.sum(f * f, -1)
    d2 = jnp.maximum(squared[:, None] + squared[None, :] - 2.0 * f @ f.T, eps)
    d = jnp.sqrt(d2) * (1.0 - jnp.eye(len(f)))
    return d / jnp.mean(d)

  def angles(f):
    diff = f[None, :, :] - f[:, None, :]  # [j, i] = f_i − f_j
    norm = jnp.sqrt(jnp.maximum(jnp.sum(diff * diff, -1, keepdims=True), eps))
    unit = jnp.where(norm > jnp.sqrt(eps), diff / norm, 0.0)
    return jnp.einsum('jid,jkd->jik', unit, unit)

  teacher_features = jax.lax.stop_gradient(teacher_features)
  distance = jnp.mean(_huber(distances(student_features) - distances(teacher_features)))
  angle = jnp.mean(_huber(angles(student_features) - angles(teacher_features)))
  return distance, angle


def similarity_preserving_term(student_features, teacher_features):
  """Similarity-preserving KD (Tung & Mori 2019): the batch's Gram matrices F·Fᵀ [B, B], each row L2-normalised;
  ‖G_teacher − G_student‖²_F / B²."""
  def gram(f):
    g = f @ f.T
    return g / jnp.maximum(jnp.linalg.norm(g, axis=-1, keepdims=True), 1e-12)
  diff = gram(jax.lax.stop_gradient(teacher_features)) - gram(student_features)
  return jnp.sum(diff * diff) / len(student_features) ** 2


def linear_cka(x, y):
  """Linear CKA (Kornblith et al. 2019) of two batches of features [B, Dx], [B, Dy]:
  ‖Yᶜᵀ Xᶜ‖²_F / (‖Xᶜᵀ Xᶜ‖_F ‖Yᶜᵀ Yᶜ‖_F), features centred over the batch."""
  x, y = x - x.mean(0), y - y.mean(0)
  return jnp.sum((y.T @ x) ** 2) / (jnp.linalg.norm(x.T @ x) * jnp.linalg.norm(y.T @ y))


def _rkd(student_features, teacher_features, *, rkd_distance_weight, rkd_angle_weight):
  distance, angle = rkd_terms(student_features, teacher_features)
  return rkd_distance_weight * distance + rkd_angle_weight * angle


def _sp(student_features, teacher_features, *, sp_weight):
  return sp_weight * similarity_preserving_term(student_features, teacher_features)


def _fitnets(student_features, teacher_features, *, fitnets_weight, aux):
  """FitNets' hint (Romero et al. 2015): the mean squared difference between the student's penultimate features,
  through its learned projector ``aux`` (:func:`hint_projector`), and the teacher's (mdistiller's form, weight 100)."""
  projected = student_features @ aux['kernel'] + aux['bias']
  return fitnets_weight * jnp.mean((projected - teacher_features) ** 2)


def hint_projector(key: jax.Array, student_size: int, teacher_size: int):
  """FitNets' own trainable parameters: a linear map from the student's feature size to the teacher's."""
  return {'kernel': jax.nn.initializers.lecun_normal()(key, (student_size, teacher_size)),
          'bias': jnp.zeros(teacher_size)}


def _cka(student_features, teacher_features, *, cka_weight):
  return cka_weight * (1.0 - linear_cka(student_features, teacher_features))


@dataclasses.dataclass(frozen=True)
class Loss:
  """A built per-example loss and the inputs it declares, which the train step gives it. ``features``: it also
  reads both models' penultimate features, ``(student_logits, teacher_logits, labels, student_features,
  teacher_features)``; ``warmup_steps``: the teacher terms' weight rises linearly to 1 over the first steps
  (DKD's warm-up), passed as ``teacher_weight``; ``init_aux(key, student feature size, teacher feature size)``: the
  objective's own trainable parameters (FitNets' projector), which the trainer keeps beside the model
  (``training.TrainStateWithAux``), trains with it and passes as ``aux``."""
  fn: Callable[..., jnp.ndarray]
  features: bool = False
  warmup_steps: int = 0
  init_aux: Optional[Callable[[jax.Array, int, int], Any]] = None

  def __call__(self, *args, **kwargs):
    return self.fn(*args, **kwargs)


def teacher_objective(name: str, term, feature_term=None):
  """A registry build for the teacher objective ``name`` from ``config.kd``: its ``term`` (per example, unscaled:
  ``term(student_logits, teacher_logits, labels, *, temperature, **own weights)``) × the KD scale, with the gold
  labels (:func:`with_gold`); a feature objective adds ``feature_term(student_features, teacher_features, **own
  weights[, aux])`` (batch-level) to KD's term — a term on the penultimate layer alone would leave the student's
  classifier untrained. Checked: the KD fields; the own weights finite float32 numbers ≥ 0, not all 0 (then the
  objective's own terms are off and the student would learn nothing, or only the gold labels, or plain KD, under
  its name)."""
  def build(temperature: float, alpha: float, scale: str, gold_weight: float, **weights):
    check_kd_config(temperature, alpha, scale, gold_weight)
    for field, value in weights.items():
      _check_weight(field, value)
    if weights and not any(weights.values()):
      learns = ('plain KD (student.loss=distillation)' if feature_term else
                'nothing' if alpha == 1.0 and not gold_weight else 'the gold labels alone (student.loss=cross_entropy)')
      raise ValueError(f'config.kd.{" and config.kd.".join(weights)} are all 0: the {name!r} objective\'s own terms '
                       f'are off and the student would learn {learns}; give {"one of them" if len(weights) > 1 else "it"}'
                       ' a weight > 0')
    factor = KD_SCALES[scale](temperature)
    logit_term = functools.partial(term, temperature=temperature, **({} if feature_term else weights))

    def loss(student_logits, teacher_logits, labels, *features, teacher_weight=None, aux=None):
      value = with_gold(factor * logit_term(student_logits, teacher_logits, labels), student_logits, labels, alpha,
                        gold_weight, teacher_weight)
      if feature_term is not None:
        student_features, teacher_features = features
        extra = feature_term(student_features, jax.lax.stop_gradient(teacher_features), **weights,
                             **({} if aux is None else {'aux': aux}))
        value = value + (extra if teacher_weight is None else teacher_weight * extra)
      return value
    return loss
  return build


@dataclasses.dataclass(frozen=True)
class LossSpec:
  """A registry entry: ``build(**settings)`` makes the per-example loss from the ``config.kd`` fields it names."""
  build: Callable[..., LossFn]
  kd_fields: Tuple[str, ...] = ()
  uses_teacher: bool = False  # whether the loss reads teacher logits (then the trainer provides them)
  uses_features: bool = False  # whether it also reads both models' penultimate features (the teacher in the step)
  min_batch: int = 1  # terms that normalise over the batch (RKD's mean distance, CKA's centring) are 0/0 below it
  splits_at_gold: bool = False  # its teacher term splits the distributions at the gold class (DKD): needs one
  init_aux: Optional[Callable[[jax.Array, int, int], Any]] = None  # its own trainable parameters (:class:`Loss`)


# The config.kd fields every teacher objective reads, besides its own weights; gold_weight and warmup_epochs came
# later, and their defaults leave the objectives as they were (:data:`TEACHER_TERM_DEFAULTS`).
TEACHER_FIELDS = ('temperature', 'alpha', 'scale', 'gold_weight', 'warmup_epochs')

# A new loss is one new entry here; its hyperparameters are read from config.kd by name.
LOSSES: Dict[str, LossSpec] = {
    'cross_entropy': LossSpec(lambda: lambda student_logits, teacher_logits, labels: cross_entropy(student_logits,
                                                                                                   labels)),
    'distillation': LossSpec(teacher_objective('distillation', _kd), kd_fields=TEACHER_FIELDS, uses_teacher=True),
    'dkd': LossSpec(teacher_objective('dkd', _dkd), uses_teacher=True, splits_at_gold=True,
                    kd_fields=(*TEACHER_FIELDS, 'dkd_target_weight', 'dkd_nontarget_weight')),
    'dist': LossSpec(teacher_objective('dist', _dist), uses_teacher=True,
                     kd_fields=(*TEACHER_FIELDS, 'dist_inter_weight', 'dist_intra_weight')),
    'standardised_distillation': LossSpec(teacher_objective('standardised_distillation', _standardised),
                                          uses_teacher=True, kd_fields=(*TEACHER_FIELDS, 'standardised_weight')),
    # Feature objectives: distillation + a term on the penultimate features (the models' intermediates/penultimate).
    'rkd': LossSpec(teacher_objective('rkd', _kd, _rkd), uses_teacher=True, uses_features=True, min_batch=2,
                    kd_fields=(*TEACHER_FIELDS, 'rkd_distance_weight', 'rkd_angle_weight')),
    'sp': LossSpec(teacher_objective('sp', _kd, _sp), uses_teacher=True, uses_features=True,
                   kd_fields=(*TEACHER_FIELDS, 'sp_weight')),
    'cka': LossSpec(teacher_objective('cka', _kd, _cka), uses_teacher=True, uses_features=True, min_batch=2,
                    kd_fields=(*TEACHER_FIELDS, 'cka_weight')),
    'fitnets': LossSpec(teacher_objective('fitnets', _kd, _fitnets), uses_teacher=True, uses_features=True,
                        init_aux=hint_projector,
                        kd_fields=(*TEACHER_FIELDS, 'fitnets_weight')),
}


def loss_spec(name: str) -> LossSpec:
  if name not in LOSSES:
    raise ValueError(f'unknown loss {name!r}; choose one of {list(LOSSES)}')
  return LOSSES[name]


# The objectives' own weights (config.kd.<name>), their authors' defaults: DKD's target and non-target terms (Zhao et
# al. 2022), DIST's inter- and intra-class relations (Huang et al. 2022); the feature objectives' (added to
# distillation): RKD's distance and angle terms (Park et al. 2019), similarity preservation (Tung & Mori 2019),
# 1 − linear CKA (Kornblith et al. 2019), FitNets' hint through a learned projector (Romero et al. 2015;
# mdistiller's weight). Logit standardisation's KD weight is 1 here; its authors' 9 goes with gold CE at 0.1 and a
# base temperature of 2 (Sun et al. 2024; configs/mnist_objectives.py:own_settings).
OBJECTIVE_WEIGHTS = dict(dkd_target_weight=1.0, dkd_nontarget_weight=8.0, dist_inter_weight=1.0,
                         dist_intra_weight=1.0, standardised_weight=1.0, rkd_distance_weight=25.0,
                         rkd_angle_weight=50.0, sp_weight=3000.0, cka_weight=1.0, fitnets_weight=100.0)
# How the teacher terms meet the gold labels, at values that leave every objective as it was before these fields:
# gold_weight, gold cross-entropy beside the teacher term at full weight (the objectives' own papers: DKD and DIST
# 1.0, logit standardisation 0.1; only with alpha = 1); warmup_epochs, the teacher terms' weight rising linearly
# from 0 to 1 over the student's first epochs, step by step (DKD's warm-up: 20 of 240 CIFAR epochs; mdistiller's
# rises epoch by epoch, min(epoch / 20, 1) from epoch 1 — the same ends, a staircase between them).
TEACHER_TERM_DEFAULTS = dict(gold_weight=0.0, warmup_epochs=0.0)


def kd_settings(temperature: float) -> dict:
  """``config.kd`` of every task: the KD settings every teacher objective reads, at ``temperature``."""
  return dict(
      temperature=temperature,
      alpha=1.0,  # weight of the KD term; 1 - alpha goes to gold-label cross-entropy
      scale='hinton',  # 'hinton': KD term × T²; 'paper': × 1/T² as in the paper's code
      teacher_mode='eval',  # 'train' runs the teacher with dropout + batch statistics (paper-code quirk)
      targets='teacher',  # or a control made from cached teacher logits (kd_jax.losses.TARGETS)
      **TEACHER_TERM_DEFAULTS,  # gold CE beside the teacher term, and its warm-up
      **OBJECTIVE_WEIGHTS,  # each objective's own weights (kd_jax/losses.py)
      # True: a saved teacher path without '{seed}' is meant to serve every seed (the report says "one teacher for
      # all seeds"); False: such a path is refused, since the seeds would not be independent runs.
      shared_teacher=False,
  )


def get_loss(name: str, kd_config: Optional[Mapping[str, Any]] = None, steps_per_epoch: Optional[int] = None) -> Loss:
  """The per-example loss called ``name``, built from the ``kd_config`` (``config.kd``) fields it declares (those of
  :data:`TEACHER_TERM_DEFAULTS` may be left out); a warm-up (``kd.warmup_epochs``) is counted in the phase's
  ``steps_per_epoch`` (needed then)."""
  spec = loss_spec(name)
  kd_config = {**TEACHER_TERM_DEFAULTS, **(kd_config or {})}
  missing = [field for field in spec.kd_fields if field not in kd_config]
  if missing:
    raise ValueError(f'loss {name!r} needs config.kd.{", config.kd.".join(missing)}')
  fields = {field: kd_config[field] for field in spec.kd_fields}
  warmup_epochs = fields.pop('warmup_epochs', 0.0)
  _check_weight('warmup_epochs', warmup_epochs)
  if warmup_epochs and steps_per_epoch is None:
    raise ValueError(f'loss {name!r}: a warm-up (config.kd.warmup_epochs={warmup_epochs!r}) is counted in the '
                     "phase's steps per epoch: give steps_per_epoch")
  return Loss(spec.build(**fields), features=spec.uses_features, init_aux=spec.init_aux,
              warmup_steps=max(1, round(warmup_epochs * steps_per_epoch)) if warmup_epochs else 0)


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
