"""Transformer teacher → LSTM student on subject–verb agreement (Linzen et al. 2016): the seed grid of
the independent Transformer, the independent LSTM (the control) and Transformer→LSTM, 3 seeds, with the gain over
the control paired by seed and the accuracy by number of attractors.

Verb-number classification on numpred.val (90/10 train/dev), tested on numpred.test.1-5:
  python -m kd_jax.main --config=configs/sva_transformer_to_lstm.py --workdir=/tmp/sva_transformer_to_lstm \
      --config.data.dir=../shared/data/sva

Variants (they combine, e.g. ':lm,paper'; what cannot run together is refused, saying why): ':lm' (language modelling
on the full sentences; Transformers become causal), ':paper' (the paper's 40 epochs), ':smoke' (seconds, synthetic
data); ':cross_fit' (the student's targets from fold teachers that did not train on the input). --config.num_seeds=N
for more seeds. Offline demo without data: --config.data.source=synthetic
"""
from kd_jax.sva import configs


def get_config(variants: str = ''):
  return configs.pair_config('transformer', 'lstm', variants)
