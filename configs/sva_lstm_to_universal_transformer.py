"""LSTM teacher → causal Universal Transformer student on subject–verb agreement (Linzen et al. 2016): the seed
grid of the independent LSTM, the independent causal Universal Transformer (the control) and their KD pair, 3 seeds,
with the gain over the control paired by seed and the accuracy by number of attractors.

The authors' Universal Transformer is the causal one (it reads the last real token; d = 256), so this config's
student is 'universal_transformer_seq'; the bidirectional one is kd_jax.sva.configs.pair_config('lstm',
'universal_transformer').

Verb-number classification on numpred.val (90/10 train/dev), tested on numpred.test.1-5:
  python -m kd_jax.main --config=configs/sva_lstm_to_universal_transformer.py --workdir=/tmp/sva_lstm_to_ut \
      --config.data.dir=../shared/data/sva

Variants (they combine, e.g. ':lm,paper'; what cannot run together is refused, saying why): ':lm' (language modelling
on the full sentences; Transformers become causal), ':paper' (the paper's 40 epochs), ':smoke' (seconds, synthetic
data); ':cross_fit' (the student's targets from fold teachers that did not train on the input). --config.num_seeds=N
for more seeds. Offline demo without data: --config.data.source=synthetic
"""
from kd_jax.sva import configs


def get_config(variants: str = ''):
  return configs.pair_config('lstm', 'universal_transformer_seq', variants)
