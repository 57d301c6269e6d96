"""A tiny LSTM → Transformer agreement grid (LSTM, Transformer, LSTM→Transformer, 2 seeds) on the synthetic grammar,
for tests and smoke checks.

  python -m kd_jax.main --config=configs/sva_smoke.py --workdir=/tmp/sva_smoke
  python -m kd_jax.main --config=configs/sva_smoke.py:lm --workdir=/tmp/sva_smoke_lm
"""
from kd_jax.sva import configs


def get_config(variants: str = ''):
  return configs.pair_config('lstm', 'transformer', ','.join(['smoke', variants]))
