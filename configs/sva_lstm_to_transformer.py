"""lstm teacher → transformer student on subject–verb agreement (Linzen et al. 2016), several seeds.

Verb-number classification on numpred.val (90/10 train/dev), tested on numpred.test.1-5:
  python -m kd_jax.main --config=configs/sva_lstm_to_transformer.py --workdir=/tmp/sva_lstm_to_transformer \
      --config.data.dir=../shared/data/sva

Variants, combinable (e.g. ':lm,paper'): ':lm' (language modelling on the full sentences; Transformers become
causal), ':paper' (the paper's 40 epochs), ':paper_teacher' (the authors' LSTM teacher regime), ':transfer'
(a teacher-labelled transfer set of 30,000 numpred.test.1 inputs), ':smoke' (seconds, synthetic data). Offline
demo without data:
--config.data.source=synthetic
"""
from kd_jax.sva import configs


def get_config(variants: str = ''):
  return configs.pair_config('lstm', 'transformer', variants)
