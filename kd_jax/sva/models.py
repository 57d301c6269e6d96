"""Sequence models of the paper's agreement experiments (Flax linen, pure functional).

Every model maps right-padded token ids ``[B, L]`` (PAD_ID = 0 marks padding)
to logits: ``[B, 2]`` verb-number logits (``objective='classify'``) or
``[B, L, vocab_size]`` next-token logits (``objective='lm'``). Padding never
changes the outputs at real positions: the LSTM runs left to right and reads
out at the last real token, and the Transformers mask padded keys.

Readouts for classification: the LSTM and the causal Transformer ("-seq")
read the last real token (the end token at the verb's position); the
bidirectional Transformer reads position 0, the bos token, as its CLS token.
"""
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from kd_jax.sva.data import PAD_ID
from kd_jax.training import PENULTIMATE  # classifiers sow the features their output layer reads

OBJECTIVES = ('classify', 'lm')
NUM_CLASSES = 2


def _last_real(x: jnp.ndarray, tokens: jnp.ndarray) -> jnp.ndarray:
  """x[b, length_b - 1]: the features of each sequence's last real token."""
  last = jnp.maximum((tokens != PAD_ID).sum(-1) - 1, 0)
  return jnp.take_along_axis(x, last[:, None, None], axis=1)[:, 0]


def _check_tokens(tokens):
  if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
    raise ValueError(f'expected integer token ids of shape [batch, length], got {tokens.dtype} {tokens.shape}')


class RecurrentDropoutLSTMCell(nn.OptimizedLSTMCell):
  """flax's LSTM cell, its previous output multiplied by a per-sequence mask (variational recurrent dropout, Gal &
  Ghahramani 2016; Keras' ``recurrent_dropout``). The same parameters as ``nn.OptimizedLSTMCell``."""

  @nn.compact
  def __call__(self, carry, inputs, recurrent_mask=None):  # pylint: disable=arguments-differ
    c, h = carry
    if recurrent_mask is not None:
      h = h * recurrent_mask
    return super().__call__((c, h), inputs)


class LSTM(nn.Module):
  """Embedding → stacked LSTMs → readout, every dropout with one mask per sequence (shared over time).

  ``dropout_rate`` drops each LSTM's inputs and the last one's outputs; ``embedding_dropout`` (None: the
  embeddings get ``dropout_rate``, which is then also the first LSTM's input dropout — the layout of earlier
  configs) drops the embeddings; ``recurrent_dropout`` drops each LSTM's previous output where it enters the
  gates. The paper's LSTM: embedding_dropout 0.2, dropout_rate 0.8, recurrent_dropout 0.8 (Keras LSTM
  dropout / recurrent_dropout and an output dropout).
  """
  vocab_size: int
  objective: str = 'classify'
  embed_dim: int = 256
  hidden_size: int = 256
  num_layers: int = 2
  dropout_rate: float = 0.2
  embedding_dropout: Optional[float] = None
  recurrent_dropout: float = 0.0

  @nn.compact
  def __call__(self, tokens, train: bool = False):
    _check_tokens(tokens)
    # broadcast_dims=(1,): the same units are dropped at every time step of a sequence.
    dropout = nn.Dropout(self.dropout_rate, broadcast_dims=(1,), deterministic=not train)
    x = nn.Embed(self.vocab_size, self.embed_dim)(tokens)
    if self.embedding_dropout is None:
      x = dropout(x)
    else:
      x = nn.Dropout(self.embedding_dropout, broadcast_dims=(1,), deterministic=not train)(x)
    scan = nn.scan(RecurrentDropoutLSTMCell, variable_broadcast='params', split_rngs={'params': False},
                   in_axes=(1, nn.broadcast), out_axes=1)
    for i in range(self.num_layers):
      if i or self.embedding_dropout is not None:
        x = dropout(x)
      recurrent_mask = None
      if train and self.recurrent_dropout > 0:
        keep = jax.random.bernoulli(self.make_rng('dropout'), 1.0 - self.recurrent_dropout,
                                    (x.shape[0], self.hidden_size))
        recurrent_mask = keep.astype(x.dtype) / (1.0 - self.recurrent_dropout)
      carry = (jnp.zeros((x.shape[0], self.hidden_size), jnp.float32),) * 2  # as nn.RNN starts the cell
      # Right padding only follows the real tokens, so a left-to-right LSTM's
      # outputs at real positions do not depend on it.
      _, x = scan(self.hidden_size, name=f'OptimizedLSTMCell_{i}')(carry, x, recurrent_mask)
    x = dropout(x)
    if self.objective == 'lm':
      return nn.Dense(self.vocab_size)(x)
    features = _last_real(x, tokens)
    self.sow('intermediates', PENULTIMATE, features)
    return nn.Dense(NUM_CLASSES)(features)


class TransformerBlock(nn.Module):
  """Pre-LayerNorm (GPT-2 style) block: x + attn(LN(x)), then x + MLP(LN(x)) with a GELU MLP of width 4d."""
  num_heads: int
  dim: int
  residual_dropout: float
  attention_dropout: float

  @nn.compact
  def __call__(self, x, mask, train: bool):
    h = nn.MultiHeadDotProductAttention(num_heads=self.num_heads, qkv_features=self.dim,
                                        dropout_rate=self.attention_dropout, deterministic=not train)(
                                            nn.LayerNorm()(x), mask=mask)
    x = x + nn.Dropout(self.residual_dropout, deterministic=not train)(h)
    h = nn.Dense(self.dim)(nn.gelu(nn.Dense(4 * self.dim)(nn.LayerNorm()(x))))
    return x + nn.Dropout(self.residual_dropout, deterministic=not train)(h)


class Transformer(nn.Module):
  """Token + learned position embeddings → blocks → LayerNorm → readout.

  ``causal``: each position attends to itself and earlier ones (the paper's
  "Transformer-seq"; required for language modelling). ``universal``: one block
  applied ``num_layers`` times (Universal Transformer, weights shared across
  depth). Padded keys are always masked.
  """
  vocab_size: int
  objective: str = 'classify'
  causal: bool = False
  universal: bool = False
  num_layers: int = 6
  num_heads: int = 8
  dim: int = 128
  max_length: int = 512
  embedding_dropout: float = 0.2
  residual_dropout: float = 0.4
  attention_dropout: float = 0.6

  @nn.compact
  def __call__(self, tokens, train: bool = False):
    _check_tokens(tokens)
    if self.objective == 'lm' and not self.causal:
      raise ValueError('a bidirectional Transformer cannot be a language model; use a causal ("_seq") model')
    if tokens.shape[1] > self.max_length:
      raise ValueError(f'sequence length {tokens.shape[1]} exceeds the model max_length {self.max_length}')
    if self.dim % self.num_heads:
      raise ValueError(f'num_heads={self.num_heads} must divide dim={self.dim} (each head gets dim / num_heads)')
    positions = self.param('position_embedding', nn.initializers.normal(0.02), (self.max_length, self.dim))
    x = nn.Embed(self.vocab_size, self.dim)(tokens) + positions[None, :tokens.shape[1]]
    x = nn.Dropout(self.embedding_dropout, deterministic=not train)(x)
    real = tokens != PAD_ID
    mask = nn.make_attention_mask(real, real)
    if self.causal:
      mask = nn.combine_masks(mask, nn.make_causal_mask(tokens))
    block: Optional[TransformerBlock] = None
    for i in range(self.num_layers):
      if block is None or not self.universal:
        block = TransformerBlock(self.num_heads, self.dim, self.residual_dropout, self.attention_dropout,
                                 name='block' if self.universal else f'block_{i}')
      x = block(x, mask, train)
    x = nn.LayerNorm()(x)
    if self.objective == 'lm':
      return nn.Dense(self.vocab_size)(x)
    features = _last_real(x, tokens) if self.causal else x[:, 0]
    self.sow('intermediates', PENULTIMATE, features)
    return nn.Dense(NUM_CLASSES)(features)


# Config name -> (class, fixed settings); sizes come from the config's model_kwargs. A new model is one entry here
# (and its sizes in kd_jax/sva/configs.py).
MODELS = {
    'lstm': (LSTM, {}),
    'transformer': (Transformer, dict(causal=False)),
    'transformer_seq': (Transformer, dict(causal=True)),
    'universal_transformer': (Transformer, dict(causal=False, universal=True)),
    'universal_transformer_seq': (Transformer, dict(causal=True, universal=True)),
}


def create_model(name: str, **kwargs) -> nn.Module:
  """Builds a model by its config name from ``vocab_size``, ``objective`` and its ``model_kwargs``."""
  objective = kwargs.get('objective', 'classify')
  if name not in MODELS:
    raise ValueError(f'unknown SVA model {name!r}; choose one of {sorted(MODELS)}')
  if objective not in OBJECTIVES:
    raise ValueError(f'unknown SVA objective {objective!r}; choose one of {OBJECTIVES}')
  cls, fixed = MODELS[name]
  if objective == 'lm' and fixed.get('causal') is False:
    raise ValueError(f'{name!r} is bidirectional and cannot be a language model; use {name}_seq')
  return cls(**fixed, **kwargs)
