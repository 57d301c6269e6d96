"""SVA models: output shapes, padding masks, causality, weight sharing, bad input."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kd_jax.sva import models as sva_models

VOCAB = 30
SMALL = {'lstm': dict(embed_dim=16, hidden_size=16, num_layers=2),
         'transformer': dict(num_layers=2, num_heads=2, dim=16)}
CLASSIFIERS = list(sva_models.MODELS)
LMS = [name for name in sva_models.MODELS if name == 'lstm' or name.endswith('_seq')]


def _model(name, objective='classify', **kwargs):
  size = SMALL['lstm' if name == 'lstm' else 'transformer']
  return sva_models.create_model(name, vocab_size=VOCAB, objective=objective, **{**size, **kwargs})


def _tokens(rows, length):
  out = np.zeros((len(rows), length), np.int32)
  for i, row in enumerate(rows):
    out[i, :len(row)] = row
  return jnp.asarray(out)


ROWS = [[2, 5, 6, 7, 3], [2, 9, 3], [2, 4, 4, 8, 11, 12, 13, 3]]


def _init(model, tokens):
  return model.init(jax.random.PRNGKey(0), tokens)


@pytest.mark.parametrize('name', CLASSIFIERS)
def test_classifier_ignores_padding(name):
  # The paper code's bidirectional mask let padded keys in; more padding must change nothing.
  model = _model(name)
  short, long = _tokens(ROWS, 8), _tokens(ROWS, 24)
  variables = _init(model, short)
  logits = model.apply(variables, short)
  chex.assert_shape(logits, (3, 2))
  chex.assert_trees_all_close(model.apply(variables, long), logits, atol=1e-5)
  # And each sequence alone gives what it gives in the batch.
  for i, row in enumerate(ROWS):
    chex.assert_trees_all_close(model.apply(variables, _tokens([row], len(row)))[0], logits[i], atol=1e-5)


@pytest.mark.parametrize('name', LMS)
def test_language_model_is_causal_and_ignores_padding(name):
  model = _model(name, 'lm')
  tokens = _tokens(ROWS, 8)
  variables = _init(model, tokens)
  logits = model.apply(variables, tokens)
  chex.assert_shape(logits, (3, 8, VOCAB))
  padded = model.apply(variables, _tokens(ROWS, 16))
  for i, row in enumerate(ROWS):
    chex.assert_trees_all_close(padded[i, :len(row)], logits[i, :len(row)], atol=1e-5)
  # Changing token 4 leaves positions 0–3 alone and changes position 4.
  changed = tokens.at[2, 4].set(20)
  out = model.apply(variables, changed)
  chex.assert_trees_all_close(out[2, :4], logits[2, :4], atol=1e-5)
  assert np.abs(np.asarray(out[2, 4] - logits[2, 4])).max() > 1e-4


def test_bidirectional_readout_sees_the_whole_sequence():
  model = _model('transformer')
  tokens = _tokens(ROWS, 8)
  variables = _init(model, tokens)
  changed = tokens.at[0, 3].set(20)  # a later token changes the CLS (position 0) readout
  assert np.abs(np.asarray(model.apply(variables, changed)[0] - model.apply(variables, tokens)[0])).max() > 1e-4


def test_universal_transformer_shares_one_block_across_depth():
  count = lambda m: sum(x.size for x in jax.tree.leaves(_init(m, _tokens(ROWS, 8))))
  assert count(_model('universal_transformer', num_layers=2)) == count(_model('universal_transformer', num_layers=6))
  assert count(_model('transformer', num_layers=6)) > count(_model('transformer', num_layers=2))


def test_dropout_only_in_training():
  model = _model('lstm', dropout_rate=0.5)
  tokens = _tokens(ROWS, 8)
  variables = _init(model, tokens)
  train = lambda seed: model.apply(variables, tokens, train=True, rngs={'dropout': jax.random.PRNGKey(seed)})
  assert np.abs(np.asarray(train(0) - train(1))).max() > 1e-4
  # Eval mode draws no dropout: other keys give the same outputs.
  evaluate = lambda seed: model.apply(variables, tokens, rngs={'dropout': jax.random.PRNGKey(seed)})
  chex.assert_trees_all_equal(evaluate(0), evaluate(1))


def test_recurrent_dropout_is_one_mask_per_sequence_and_only_in_training():
  tokens = _tokens(ROWS, 8)
  plain = _model('lstm', dropout_rate=0.0)
  regime = _model('lstm', dropout_rate=0.0, embedding_dropout=0.0, recurrent_dropout=0.5)
  variables = _init(plain, tokens)
  # The same parameters (checkpoints interchange) and, in eval mode, the same function.
  chex.assert_trees_all_equal_shapes(_init(regime, tokens), variables)
  chex.assert_trees_all_equal(regime.apply(variables, tokens), plain.apply(variables, tokens))
  train = lambda model, seed: model.apply(variables, tokens, train=True, rngs={'dropout': jax.random.PRNGKey(seed)})
  chex.assert_trees_all_equal(train(plain, 0), plain.apply(variables, tokens))  # no dropout anywhere: same
  assert np.abs(np.asarray(train(regime, 0) - train(regime, 1))).max() > 1e-4  # the recurrent masks drop

  # The cell multiplies its previous output by the mask, the same mask at every step: a mask of ones is no
  # dropout, a mask of zeros makes every step see h = 0 (its cell state c still carries the past).
  cell = sva_models.RecurrentDropoutLSTMCell(4)
  x = jax.random.normal(jax.random.PRNGKey(2), (3, 5))
  carry = (jax.random.normal(jax.random.PRNGKey(3), (3, 4)), jax.random.normal(jax.random.PRNGKey(4), (3, 4)))
  params = cell.init(jax.random.PRNGKey(0), carry, x)
  chex.assert_trees_all_equal(cell.apply(params, carry, x, jnp.ones((3, 4))), cell.apply(params, carry, x))
  chex.assert_trees_all_equal(cell.apply(params, carry, x, jnp.zeros((3, 4))),
                              cell.apply(params, (carry[0], jnp.zeros((3, 4))), x))


def test_bad_models_and_inputs():
  with pytest.raises(ValueError, match="unknown SVA model 'gru'"):
    sva_models.create_model('gru', vocab_size=VOCAB)
  with pytest.raises(ValueError, match="unknown SVA objective 'mlm'"):
    sva_models.create_model('lstm', vocab_size=VOCAB, objective='mlm')
  with pytest.raises(ValueError, match='cannot be a language model; use transformer_seq'):
    sva_models.create_model('transformer', vocab_size=VOCAB, objective='lm')
  with pytest.raises(ValueError, match=r'integer token ids of shape \[batch, length\]'):
    _init(_model('lstm'), jnp.zeros((2, 5, 1)))
  with pytest.raises(ValueError, match='exceeds the model max_length 4'):
    _init(_model('transformer', max_length=4), _tokens(ROWS, 8))
