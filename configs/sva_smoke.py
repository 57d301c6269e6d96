"""A tiny LSTM → Transformer agreement run on the synthetic grammar, for tests and smoke checks.

  python -m kd_jax.main --config=configs/sva_smoke.py --workdir=/tmp/sva_smoke
  python -m kd_jax.main --config=configs/sva_smoke.py:lm --workdir=/tmp/sva_smoke_lm
"""
from kd_jax.sva import config_base


def get_config(variant: str = 'classify'):
  return config_base.shrink_to_smoke(config_base.pair_config('lstm', 'transformer', variant))
