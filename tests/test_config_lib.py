import ml_collections
import pytest

from kd_jax import config_lib


def _variants(log):
  return {'default': None, 'wide': lambda c: log.append('wide') or c.update(width=2 * c.width),
          'long': lambda c: log.append('long') or c.update(epochs=10)}


def test_variants_compose_in_the_declared_order():
  log = []
  config = config_lib.apply_variants(ml_collections.ConfigDict(dict(width=3, epochs=1)), 'long, wide', _variants(log))
  assert (config.width, config.epochs) == (6, 10) and log == ['wide', 'long']
  assert config_lib.parse_variants('', _variants([])) == [] and config_lib.parse_variants(None, _variants([])) == []
  assert config_lib.parse_variants('default,', _variants([])) == ['default']


def test_unknown_variant_names_the_known_ones():
  with pytest.raises(ValueError, match="unknown config variant 'tpu'; choose from default, wide, long"):
    config_lib.parse_variants('wide,tpu', _variants([]))


def test_phase_config_overrides():
  cfg = config_lib.phase_config('mlp', {'hidden_sizes': (4,)}, 'distillation', batch_size=32)
  assert (cfg.model, cfg.loss, cfg.batch_size, cfg.checkpoint) == ('mlp', 'distillation', 32, '')
  assert cfg.model_kwargs.hidden_sizes == (4,)
