"""SVA training with batches from the host vs on the device (``config.steps_per_dispatch``), on whatever JAX sees.

    python benchmarks/sva_device_loop.py --data_dir=../shared/data/sva [--steps=300] [--steps_per_dispatch=100]

The job's own pieces on the numpred training split (or synthetic sentences without ``--data_dir``): the config's
teacher (LSTM) and student (Transformer) models, Adam, batch 64, batches of similar lengths trimmed to their
length bucket. For each model, ``training.fit`` runs ``--steps`` steps once per mode: one dispatch per host batch
(0) and K steps per device program, one ``lax.switch`` branch per bucket length. Prints the wall time of the whole
fit (compilation included) and the examples/s ``fit`` logs (after its first dispatch, so without compilation).
"""
import time

from absl import app
from absl import flags
import jax

from kd_jax import input_pipeline
from kd_jax import losses
from kd_jax import sharding
from kd_jax import phases
from kd_jax import training
from kd_jax.sva import configs
from kd_jax.sva import data as sva_data
from kd_jax.sva import models
from kd_jax.sva import task

_DATA_DIR = flags.DEFINE_string('data_dir', '', 'Directory of the Linzen numpred files; empty: synthetic sentences.')
_STEPS = flags.DEFINE_integer('steps', 300, 'Training steps per measurement.')
_K = flags.DEFINE_integer('steps_per_dispatch', 100, 'Steps per device program in the device mode.')


def main(_):
  config = configs.pair_config('lstm', 'transformer', '')
  if _DATA_DIR.value:
    config.data.dir = _DATA_DIR.value
  else:
    config.data.source = 'synthetic'
  train_examples, test_examples, source, _ = task.load_examples(config)
  vocab = sva_data.Vocab.build(task.tokens(train_examples), config.data.vocab_min_count)
  split = task.encode(train_examples, vocab, config, task.padded_length(config, [train_examples, *test_examples.values()]))
  mesh = sharding.data_mesh()
  print(f'{source}: {len(split)} training sequences padded to {split.tokens.shape[1]}, '
        f'{len(split.batch_variants)} bucket lengths {split.batch_variants}; {mesh.size} × '
        f'{jax.devices()[0].device_kind}; {_STEPS.value} steps per measurement', flush=True)
  print('| model | mode | wall s (compile included) | ex/s (after the first dispatch) |')
  print('|---|---|---|---|')
  for role, cfg in (('teacher', config.models.lstm), ('student', config.models.transformer)):
    model = models.create_model(cfg.model, vocab_size=len(vocab), objective=config.objective, **cfg.model_kwargs)
    tx = training.make_optimizer(cfg, _STEPS.value)
    step = training.make_train_step(model, tx, losses.get_loss('cross_entropy'))
    for k in (0, _K.value):
      rates = []
      writer = type('Writer', (), {'write': lambda self, phase, s, scalars: rates.append(scalars['examples_per_sec'])})()
      batches = input_pipeline.Batches(split, [input_pipeline.BatchOrder(len(split), cfg.batch_size, 0, 1,
                                                                         split.lengths)])
      state = training.init_state(model, tx, jax.random.PRNGKey(0), phases.example_input(split))
      start = time.perf_counter()
      jax.block_until_ready(training.fit(role, step, state, batches, None, training.Loop(
          num_steps=_STEPS.value, mesh=mesh, steps_per_dispatch=k, log_every=_STEPS.value, writer=writer)))
      mode = 'host batches' if not k else f'{k} steps per dispatch'
      print(f'| {cfg.model} | {mode} | {time.perf_counter() - start:.1f} | {rates[-1]:,.0f} |', flush=True)


if __name__ == '__main__':
  app.run(main)
