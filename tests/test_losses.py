import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import softmax

from kd_jax import losses

# Teacher logits [0, 2·ln 3] at T = 2 give soft targets p = [1/4, 3/4];
# student logits [0, 0] give q = [1/2, 1/2] at any T.
TEACHER = jnp.array([[0.0, 2 * np.log(3.0)]])
STUDENT = jnp.array([[0.0, 0.0]])
LABELS = jnp.array([1])
KL = 0.25 * np.log(0.25 / 0.5) + 0.75 * np.log(0.75 / 0.5)


@pytest.mark.parametrize('scale,factor', [('hinton', 4.0), ('paper', 0.25)])
def test_kd_term_value_and_gradient(scale, factor):
  value = losses.kd_term(STUDENT, TEACHER, temperature=2.0, scale=scale)
  chex.assert_trees_all_close(value, jnp.array([factor * KL]), rtol=1e-6)
  # d/ds KL(p ‖ softmax(s/T)) = (q − p)/T.
  grad = jax.grad(lambda s: losses.kd_term(s, TEACHER, 2.0, scale).sum())(STUDENT)
  chex.assert_trees_all_close(grad, factor * jnp.array([[0.25, -0.25]]) / 2.0, rtol=1e-6)


def test_distillation_mixes_kd_and_gold_terms():
  loss = losses.get_loss('distillation', dict(temperature=2.0, alpha=0.3, scale='hinton'))
  expected = 0.3 * 4.0 * KL + 0.7 * np.log(2.0)  # CE of [1/2, 1/2] on the gold class
  chex.assert_trees_all_close(loss(STUDENT, TEACHER, LABELS), jnp.array([expected]), rtol=1e-6)
  pure_kd = losses.get_loss('distillation', dict(temperature=2.0, alpha=1.0, scale='paper'))
  chex.assert_trees_all_close(pure_kd(STUDENT, TEACHER, jnp.array([0])), jnp.array([0.25 * KL]), rtol=1e-6)


def test_kd_is_zero_at_match_and_teacher_gets_no_gradient():
  logits = jax.random.normal(jax.random.PRNGKey(0), (5, 10))
  chex.assert_trees_all_close(losses.kd_term(logits, logits, 3.0), jnp.zeros(5), atol=1e-5)
  teacher_grad = jax.grad(lambda t: losses.kd_term(STUDENT, t, 2.0).sum())(TEACHER)
  chex.assert_trees_all_equal(teacher_grad, jnp.zeros_like(TEACHER))


def test_cross_entropy_ignores_teacher():
  loss = losses.get_loss('cross_entropy')
  chex.assert_trees_all_close(loss(STUDENT, None, LABELS), jnp.array([np.log(2.0)]), rtol=1e-6)


@pytest.mark.parametrize('kwargs,match', [
    (dict(temperature=0.0), 'temperature must be a finite number > 0'),
    (dict(temperature=-1.0), 'temperature must be a finite number > 0'),
    (dict(alpha=1.5), r'config.kd.alpha must be a number in \[0, 1\], got 1.5'),
    (dict(alpha=-0.1), r'\[0, 1\]'),
    (dict(scale='t3'), "unknown KD scale 't3'"),
    # Finite, but out of float32 range for logits / T or the KD term's T² (1/T²): used to fail after the teacher.
    (dict(temperature=1e-30), r'config.kd.temperature=1e-30 is out of float32 range for the KD term'),
    (dict(temperature=1e30), r"temperature=1e\+30 is out of float32 range .*scale 'hinton' gives 1e\+60"),
    (dict(temperature=1e-20, scale='paper'), r"scale 'paper' gives 1e\+40"),
])
def test_bad_kd_settings(kwargs, match):
  with pytest.raises(ValueError, match=match):
    losses.get_loss('distillation', {**dict(temperature=1.0, alpha=1.0, scale='hinton'), **kwargs})


def test_a_loss_reads_the_kd_fields_it_declares():
  assert losses.LOSSES['distillation'].kd_fields == ('temperature', 'alpha', 'scale', 'gold_weight', 'warmup_epochs')
  assert losses.LOSSES['distillation'].uses_teacher and not losses.LOSSES['cross_entropy'].uses_teacher
  with pytest.raises(ValueError, match=r"loss 'distillation' needs config.kd.alpha, config.kd.scale"):
    losses.get_loss('distillation', dict(temperature=2.0))
  # Fields a loss does not declare are not read (a config.kd may hold other losses' settings).
  loss = losses.get_loss('distillation', dict(temperature=2.0, alpha=1.0, scale='hinton', margin=3.0))
  chex.assert_trees_all_close(loss(STUDENT, TEACHER, LABELS), jnp.array([4.0 * KL]), rtol=1e-6)


def test_unknown_loss():
  with pytest.raises(ValueError, match="unknown loss 'mse'"):
    losses.get_loss('mse')


def _gold_and_rest(probs, labels):
  rows = np.arange(len(labels))
  rest = probs.copy()
  rest[rows, labels] = 0.0
  return probs[rows, labels], rest / rest.sum(-1, keepdims=True)


def test_shuffled_confidence_moves_the_teachers_gold_probabilities_to_other_inputs():
  rng = np.random.default_rng(0)
  teacher, labels = 3.0 * rng.normal(size=(50, 4)), rng.integers(0, 4, 50)
  control = losses.shuffled_confidence_logits(teacher, labels, 2.0, np.random.default_rng(1))
  chex.assert_shape(control, (50, 4))
  p_gold, p_rest = _gold_and_rest(softmax(teacher / 2.0, axis=-1), labels)
  q_gold, q_rest = _gold_and_rest(softmax(control.astype(np.float64) / 2.0, axis=-1), labels)
  # Input i gets the gold probability of input perm[i], the rest in its own teacher proportions.
  chex.assert_trees_all_close(q_gold, p_gold[np.random.default_rng(1).permutation(50)], atol=1e-6)
  chex.assert_trees_all_close(q_rest, p_rest, atol=1e-5)
  assert not np.allclose(q_gold, p_gold, atol=1e-3)


def test_shuffled_confidence_splits_the_rest_evenly_where_the_teacher_was_certain():
  teacher = np.array([[0.0, 0.0, 0.0], [800.0, 0.0, 0.0]])  # row 1: p(gold) = 1 in float64
  labels = np.array([1, 0])
  for seed in range(4):  # both the identity and the swap
    control = losses.shuffled_confidence_logits(teacher, labels, 1.0, np.random.default_rng(seed))
    assert np.all(np.isfinite(control))
    q_gold = np.array([1 / 3, 1.0])[np.random.default_rng(seed).permutation(2)]
    rest = (1.0 - q_gold[1]) / 2
    chex.assert_trees_all_close(softmax(control.astype(np.float64), axis=-1)[1], np.array([q_gold[1], rest, rest]),
                                atol=1e-6)


# ----------------------------------------------------------------------------- other objectives, against numpy

def _softmax64(z, t):
  return softmax(np.asarray(z, np.float64) / t, axis=-1)


def _kl(p, q):
  return np.sum(p * (np.log(p) - np.log(q)), axis=-1)


def _dkd_reference(s, t, labels, temperature):
  """TCKD and NCKD from Zhao et al.'s definitions: binary (gold, rest) probabilities, and the non-gold classes'
  probabilities renormalised (p_i / (1 − p_gold))."""
  ps, pt = _softmax64(s, temperature), _softmax64(t, temperature)
  rows = np.arange(len(labels))
  b = lambda p: np.stack([p[rows, labels], 1 - p[rows, labels]], -1)
  def rest(p):
    q = p.copy()
    q[rows, labels] = np.nan
    return q / (1 - p[rows, labels])[:, None]
  nckd = np.nansum(rest(pt) * (np.log(rest(pt)) - np.log(rest(ps))), axis=-1)
  return _kl(b(pt), b(ps)), nckd


def _batch(seed, n=6, c=5, spread=3.0):
  rng = np.random.default_rng(seed)
  return (spread * rng.normal(size=(n, c))).astype(np.float32), (spread * rng.normal(size=(n, c))).astype(
      np.float32), rng.integers(0, c, n)


@pytest.mark.parametrize('temperature,target_weight,nontarget_weight,scale,alpha', [
    (4.0, 1.0, 8.0, 'hinton', 1.0), (1.0, 0.5, 2.0, 'paper', 0.6)])
def test_dkd_against_its_definition(temperature, target_weight, nontarget_weight, scale, alpha):
  s, t, labels = _batch(1)
  tckd, nckd = _dkd_reference(s, t, labels, temperature)
  ce = -np.log(_softmax64(s, 1.0)[np.arange(len(labels)), labels])
  factor = temperature ** 2 if scale == 'hinton' else temperature ** -2
  expected = alpha * factor * (target_weight * tckd + nontarget_weight * nckd) + (1 - alpha) * ce
  loss = losses.get_loss('dkd', dict(temperature=temperature, alpha=alpha, scale=scale,
                                     dkd_target_weight=target_weight, dkd_nontarget_weight=nontarget_weight))
  chex.assert_trees_all_close(loss(s, t, labels), expected.astype(np.float32), rtol=2e-5, atol=1e-6)


def test_dkd_decomposes_kd():
  # Known answer (Zhao et al., eq. 7): KD = TCKD + (1 − p_gold^teacher)·NCKD, example by example.
  s, t, labels = _batch(2)
  tckd, nckd = losses.dkd_terms(s, t, labels, 2.0)
  p_gold = _softmax64(t, 2.0)[np.arange(len(labels)), labels]
  chex.assert_trees_all_close(tckd + (1 - p_gold) * nckd, losses.kd_term(s, t, 2.0, 'paper') * 4.0, rtol=1e-4,
                              atol=1e-6)
  # Two classes: nothing outside gold to compare, so NCKD is 0 and TCKD is all of KD.
  tckd, nckd = losses.dkd_terms(STUDENT, TEACHER, LABELS, 2.0)
  chex.assert_trees_all_close((tckd, nckd), (jnp.array([KL]), jnp.zeros(1)), atol=1e-6)


def _pearson(a, b):
  a, b = a - a.mean(-1, keepdims=True), b - b.mean(-1, keepdims=True)
  return (a * b).sum(-1) / np.sqrt((a * a).sum(-1) * (b * b).sum(-1))


@pytest.mark.parametrize('temperature,inter_weight,intra_weight,alpha', [(1.0, 1.0, 1.0, 1.0), (4.0, 2.0, 0.5, 0.5)])
def test_dist_against_its_definition(temperature, inter_weight, intra_weight, alpha):
  s, t, labels = _batch(3, n=8, c=4)
  ps, pt = _softmax64(s, temperature), _softmax64(t, temperature)
  inter = 1 - _pearson(ps, pt)  # per example, over the classes
  intra = np.mean(1 - _pearson(ps.T, pt.T))  # per class over the batch, then averaged
  ce = -np.log(_softmax64(s, 1.0)[np.arange(len(labels)), labels])
  expected = alpha * temperature ** 2 * (inter_weight * inter + intra_weight * intra) + (1 - alpha) * ce
  loss = losses.get_loss('dist', dict(temperature=temperature, alpha=alpha, scale='hinton',
                                      dist_inter_weight=inter_weight, dist_intra_weight=intra_weight))
  chex.assert_trees_all_close(loss(s, t, labels), expected.astype(np.float32), rtol=1e-4, atol=1e-6)
  # Known answer: Pearson ignores scale and shift, so a student whose probabilities are an affine copy of the
  # teacher's on every row and column has nothing left to learn.
  inter, intra = losses.dist_terms(jnp.log(jnp.asarray(pt)), jnp.log(jnp.asarray(pt)), 1.0)
  chex.assert_trees_all_close((inter, intra), (jnp.zeros(len(pt)), 0.0), atol=1e-5)


@pytest.mark.parametrize('temperature,scale,alpha', [(2.0, 'hinton', 1.0), (1.0, 'paper', 0.3)])
def test_standardised_distillation_against_its_definition(temperature, scale, alpha):
  s, t, labels = _batch(4, c=7)
  z = lambda x: (x - x.mean(-1, keepdims=True)) / (np.std(np.asarray(x, np.float64), -1, ddof=1, keepdims=True) + 1e-7)
  factor = temperature ** 2 if scale == 'hinton' else temperature ** -2
  ce = -np.log(_softmax64(s, 1.0)[np.arange(len(labels)), labels])
  expected = alpha * factor * _kl(_softmax64(z(t), temperature), _softmax64(z(s), temperature)) + (1 - alpha) * ce
  loss = losses.get_loss('standardised_distillation',
                         dict(temperature=temperature, alpha=alpha, scale=scale, standardised_weight=1.0))
  chex.assert_trees_all_close(loss(s, t, labels), expected.astype(np.float32), rtol=1e-4, atol=1e-6)
  # Known answer: a student whose logits are the teacher's scaled and shifted matches it exactly.
  pure = losses.get_loss('standardised_distillation',
                         dict(temperature=temperature, alpha=1.0, scale=scale, standardised_weight=1.0))
  chex.assert_trees_all_close(pure(3.0 * t + 1.0, t, labels), np.zeros(len(labels)), atol=1e-5)


def test_objective_weights_are_checked():
  with pytest.raises(ValueError, match=r'config.kd.dkd_nontarget_weight must be a finite number ≥ 0 \(at most '
                                       r'3.4e\+38, float32\), got -1'):
    losses.get_loss('dkd', dict(temperature=1.0, alpha=1.0, scale='hinton', dkd_target_weight=1.0,
                                dkd_nontarget_weight=-1))
  with pytest.raises(ValueError, match=r'config.kd.sp_weight must be a finite number ≥ 0 .*got 1e\+39'):
    losses.get_loss('sp', dict(temperature=1.0, alpha=1.0, scale='hinton', sp_weight=1e39))
  with pytest.raises(ValueError, match=r'loss .dist. needs config.kd.dist_inter_weight, config.kd.dist_intra_weight'):
    losses.get_loss('dist', dict(temperature=1.0, alpha=1.0, scale='hinton'))


@pytest.mark.parametrize('name,weights,alpha,learns', [
    ('dkd', dict(dkd_target_weight=0.0, dkd_nontarget_weight=0.0), 1.0, 'nothing'),
    ('dist', dict(dist_inter_weight=0.0, dist_intra_weight=0.0), 0.5, r'the gold labels alone \(student.loss=cross_'),
    ('rkd', dict(rkd_distance_weight=0.0, rkd_angle_weight=0.0), 1.0, r'plain KD \(student.loss=distillation\)'),
    ('sp', dict(sp_weight=0.0), 1.0, 'plain KD'),
])
def test_an_objective_whose_own_terms_are_all_off_is_refused(name, weights, alpha, learns):
  kd = dict(temperature=4.0, alpha=alpha, scale='hinton', **weights)
  with pytest.raises(ValueError, match=rf"config.kd.{'.*'.join(weights)} are all 0: the '{name}' objective's own "
                                       rf'terms are off and the student would learn {learns}'):
    losses.get_loss(name, kd)
  losses.get_loss(name, {**kd, next(iter(weights)): 1.0})  # one term on is enough


# ----------------------------------------------------------------------------- feature objectives, against numpy

def _smooth_l1(x):
  x = np.abs(x)
  return np.where(x < 1, 0.5 * x * x, x - 0.5)


def _rkd_reference(s, t):
  """Park et al.'s ψ_D (distance over the mean distance of all pairs X², diagonal included) and ψ_A (cosine of the
  angle at j, 0 for a degenerate pair), with explicit loops; mean smooth L1 over pairs and over triplets."""
  def psi_d(f):
    d = np.array([[np.linalg.norm(a - b) for b in f] for a in f])
    return d / d.mean()

  def psi_a(f):
    n = len(f)
    out = np.zeros((n, n, n))
    for i in range(n):
      for j in range(n):
        for k in range(n):
          if i != j and k != j:
            u, v = f[i] - f[j], f[k] - f[j]
            out[j, i, k] = u @ v / (np.linalg.norm(u) * np.linalg.norm(v))
    return out
  s, t = np.asarray(s, np.float64), np.asarray(t, np.float64)
  return _smooth_l1(psi_d(s) - psi_d(t)).mean(), _smooth_l1(psi_a(s) - psi_a(t)).mean()


def _features(seed, n=6, ds=5, dt=3):
  rng = np.random.default_rng(seed)
  return rng.normal(size=(n, ds)).astype(np.float32), rng.normal(size=(n, dt)).astype(np.float32)


def _feature_loss(name, **fields):
  return losses.get_loss(name, dict(temperature=2.0, alpha=1.0, scale='hinton', **fields))


@pytest.mark.parametrize('distance_weight,angle_weight,seed', [(25.0, 50.0, 5), (1.0, 0.0, 6)])
def test_rkd_against_its_definition(distance_weight, angle_weight, seed):
  s, t = _features(seed)
  distance, angle = _rkd_reference(s, t)
  loss = _feature_loss('rkd', rkd_distance_weight=distance_weight, rkd_angle_weight=angle_weight)
  logits = np.zeros((len(s), 3), np.float32)  # equal logits: the distillation part is 0
  expected = distance_weight * distance + angle_weight * angle
  chex.assert_trees_all_close(loss(logits, logits, np.zeros(len(s), int), s, t), np.full(len(s), expected, np.float32),
                              rtol=1e-4)
  # Known answer: relations ignore the teacher's scale, rotation and offset.
  rotation = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))[0]
  same = 3.0 * t @ rotation + 1.0
  chex.assert_trees_all_close(losses.rkd_terms(same, t), (0.0, 0.0), atol=1e-5)


@pytest.mark.parametrize('weight,seed', [(3000.0, 7), (1.0, 8)])
def test_similarity_preserving_against_its_definition(weight, seed):
  s, t = _features(seed, n=5)
  def gram(f):
    g = np.asarray(f, np.float64) @ np.asarray(f, np.float64).T
    return g / np.linalg.norm(g, axis=1, keepdims=True)
  expected = weight * np.sum((gram(t) - gram(s)) ** 2) / len(s) ** 2
  logits = np.zeros((len(s), 3), np.float32)
  chex.assert_trees_all_close(_feature_loss('sp', sp_weight=weight)(logits, logits, np.zeros(len(s), int), s, t),
                              np.full(len(s), expected, np.float32), rtol=1e-4)
  chex.assert_trees_all_close(losses.similarity_preserving_term(2.0 * t, t), 0.0, atol=1e-6)  # scale-free


@pytest.mark.parametrize('weight,seed', [(1.0, 9), (5.0, 10)])
def test_linear_cka_against_its_definition(weight, seed):
  s, t = _features(seed, n=8)
  x, y = (np.asarray(a, np.float64) - np.asarray(a, np.float64).mean(0) for a in (s, t))
  # Kornblith et al.'s HSIC form: CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)), K = XXᵀ, L = YYᵀ, centred.
  hsic = lambda k, l: np.trace(k @ l)
  k, l = x @ x.T, y @ y.T
  cka = hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))
  logits = np.zeros((len(s), 3), np.float32)
  chex.assert_trees_all_close(_feature_loss('cka', cka_weight=weight)(logits, logits, np.zeros(len(s), int), s, t),
                              np.full(len(s), weight * (1 - cka), np.float32), rtol=1e-4)
  rotation = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))[0]
  chex.assert_trees_all_close(losses.linear_cka(2.0 * t @ rotation + 1.0, t), 1.0, rtol=1e-5)  # known answer


def test_a_feature_objective_adds_its_term_to_distillation():
  s, t = _features(11)
  student, teacher = np.asarray(_batch(12, n=6, c=4)[0]), np.asarray(_batch(13, n=6, c=4)[0])
  labels = np.arange(6) % 4
  kd = losses.get_loss('distillation', dict(temperature=2.0, alpha=0.7, scale='hinton'))(student, teacher, labels)
  cka = losses.get_loss('cka', dict(temperature=2.0, alpha=0.7, scale='hinton', cka_weight=2.0))
  chex.assert_trees_all_close(cka(student, teacher, labels, s, t), kd + 2.0 * (1 - losses.linear_cka(s, t)), rtol=1e-5)
  assert cka.features and not losses.get_loss('distillation', dict(temperature=2.0, alpha=0.7, scale='hinton')).features


@pytest.mark.parametrize('weight,seed', [(100.0, 14), (1.0, 15)])
def test_fitnets_hint_against_its_definition(weight, seed):
  # The hint projects the student's features through its own parameters, aux (kept by the step: tests/test_training.py).
  rng = np.random.default_rng(seed)
  s, t = rng.normal(size=(6, 4)).astype(np.float32), rng.normal(size=(6, 3)).astype(np.float32)
  aux = {'kernel': rng.normal(size=(4, 3)).astype(np.float32), 'bias': rng.normal(size=3).astype(np.float32)}
  loss = _feature_loss('fitnets', fitnets_weight=weight)
  logits = np.zeros((6, 3), np.float32)
  projected = s.astype(np.float64) @ aux['kernel'] + aux['bias']
  expected = weight * np.mean((projected - t) ** 2)  # Romero et al.'s hint, mean-squared
  chex.assert_trees_all_close(loss(logits, logits, np.zeros(6, int), s, t, aux=aux), np.full(6, expected, np.float32),
                              rtol=1e-5)
  assert loss.init_aux is losses.hint_projector and _feature_loss('cka', cka_weight=1.0).init_aux is None
  identity = {'kernel': np.eye(3, dtype=np.float32), 'bias': np.zeros(3, np.float32)}
  chex.assert_trees_all_close(loss(logits, logits, np.zeros(6, int), t, t, aux=identity), np.zeros(6), atol=1e-6)
  assert losses.hint_projector(jax.random.PRNGKey(0), 4, 3)['kernel'].shape == (4, 3)


def _numpy_cross_entropy(logits, labels):
  logits = np.asarray(logits, np.float64)
  log_p = logits - logits.max(-1, keepdims=True)
  log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
  return -log_p[np.arange(len(labels)), labels]


@pytest.mark.parametrize('name,weights', [('dkd', dict(dkd_target_weight=1.0, dkd_nontarget_weight=8.0)),
                                          ('dist', dict(dist_inter_weight=1.0, dist_intra_weight=1.0)),
                                          ('standardised_distillation', dict(standardised_weight=1.0)),
                                          ('distillation', {})])
def test_gold_weight_adds_gold_cross_entropy_beside_the_full_teacher_term(name, weights):
  student, teacher, labels = _batch(21, n=6, c=5)
  kd = dict(temperature=2.0, alpha=1.0, scale='hinton', **weights)
  term = losses.get_loss(name, kd)(student, teacher, labels)
  with_gold = losses.get_loss(name, {**kd, 'gold_weight': 0.1})(student, teacher, labels)
  chex.assert_trees_all_close(with_gold, term + 0.1 * _numpy_cross_entropy(student, labels), rtol=1e-5)


def test_logit_standardisations_own_weight_scales_its_teacher_term():
  student, teacher, labels = _batch(22, n=6, c=5)
  kd = dict(temperature=2.0, alpha=1.0, scale='hinton')
  one = losses.get_loss('standardised_distillation', {**kd, 'standardised_weight': 1.0})(student, teacher, labels)
  nine = losses.get_loss('standardised_distillation', {**kd, 'standardised_weight': 9.0, 'gold_weight': 0.1})
  chex.assert_trees_all_close(nine(student, teacher, labels), 9.0 * one + 0.1 * _numpy_cross_entropy(student, labels),
                              rtol=1e-5)


@pytest.mark.parametrize('kd,match', [
    (dict(alpha=0.9, gold_weight=1.0), 'set one of the two'),
    (dict(gold_weight=-1.0), 'gold_weight must be a finite number'),
    (dict(gold_weight=float('nan')), 'gold_weight must be a finite number'),
    (dict(warmup_epochs=-1.0), 'warmup_epochs must be a finite number'),
])
def test_bad_gold_weight_or_warmup_is_refused(kd, match):
  with pytest.raises(ValueError, match=match):
    losses.get_loss('dkd', {**dict(temperature=4.0, alpha=1.0, scale='hinton', dkd_target_weight=1.0,
                                   dkd_nontarget_weight=8.0), **kd}, steps_per_epoch=10)


def test_a_warmup_is_counted_in_the_phases_steps_and_scales_only_the_teacher_term():
  kd = dict(temperature=4.0, alpha=1.0, scale='hinton', dkd_target_weight=1.0, dkd_nontarget_weight=8.0,
            gold_weight=1.0)
  assert losses.get_loss('dkd', kd).warmup_steps == 0
  loss = losses.get_loss('dkd', {**kd, 'warmup_epochs': 2.5}, steps_per_epoch=4)
  assert loss.warmup_steps == 10
  with pytest.raises(ValueError, match='give steps_per_epoch'):
    losses.get_loss('dkd', {**kd, 'warmup_epochs': 2.5})
  student, teacher, labels = _batch(23, n=6, c=5)
  term = losses.get_loss('dkd', {**kd, 'gold_weight': 0.0})(student, teacher, labels)
  chex.assert_trees_all_close(loss(student, teacher, labels, teacher_weight=0.3),
                              0.3 * term + _numpy_cross_entropy(student, labels), rtol=1e-5)
