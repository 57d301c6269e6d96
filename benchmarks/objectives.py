"""The cost of each teacher objective and of function matching per training step, next to vanilla KD's.

  python benchmarks/objectives.py            # MNIST-shaped batches of 128, the CPU-width CNN teacher, the MLP student

Rows: the MLP student's step from cached teacher logits (the logits come in the batch) with each logit objective of
kd_jax/losses.py; then the step with the teacher inside it (eval mode): vanilla KD, each feature objective (they read
the teacher's features), and vanilla KD with each kind of function matching (kd_jax/mnist/augment.py: the views drawn
and warped in the step, both models on them).
Each row: steps/s, examples/s and the ratio to its baseline (vanilla KD from cached logits; the teacher in the step
without augmentation). Timing excludes the first (compiling) call and blocks on the results; median of repeats.
"""
from absl import app
from absl import flags
import jax
import ml_collections
import numpy as np

from kd_jax import losses
from kd_jax import sharding
from kd_jax import training
from kd_jax.mnist import augment
from kd_jax.mnist import configs
from kd_jax.mnist import models
import timing  # benchmarks/timing.py

_BATCH = flags.DEFINE_integer('batch_size', 128, 'Global batch size.')
_STEPS = flags.DEFINE_integer('steps', 200, 'Timed steps per measurement.')
_REPEATS = flags.DEFINE_integer('repeats', 5, 'Measurements per row; the median is printed.')
_VIEWS = ('crop,mixup', 'translate,scale')


def main(_):
  mesh = sharding.data_mesh()
  batch_size = _BATCH.value
  rng = np.random.default_rng(0)
  config = configs.grid_config()
  kd = config.kd.to_dict()
  batch = sharding.shard_batch({'inputs': rng.uniform(size=(batch_size, 28, 28, 1)).astype(np.float32),
                                'label': rng.integers(0, 10, batch_size).astype(np.int32),
                                'teacher_logits': rng.normal(size=(batch_size, 10)).astype(np.float32)}, mesh)
  tx = training.make_optimizer(ml_collections.ConfigDict(dict(optimizer='adam', learning_rate=1e-3,
                                                              schedule='constant', clip_norm=0.0)), 1000)
  teacher = models.create_model('cnn', **configs.MODEL_SETTINGS['cnn']['cpu'])
  student = models.create_model('mlp')
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  example = batch['inputs'][:1]
  teacher_variables = jax.device_put(training.init_variables(teacher, jax.random.PRNGKey(0), example), replicated)

  def rate(loss_name, in_step=False, views=''):
    loss_fn = losses.get_loss(loss_name, kd)
    init_aux = training.aux_initialiser(loss_fn, student, teacher, example)
    state = jax.device_put(training.init_state(student, tx, jax.random.PRNGKey(1), example, init_aux), replicated)
    step = training.make_train_step(student, tx, loss_fn, teacher if in_step else None,
                                    training.StepOptions(augment=augment.make(views)))
    sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data'))
    jitted = jax.jit(step, in_shardings=(replicated, sharded, replicated), out_shardings=(replicated, replicated),
                     compiler_options=training.compiler_options(teacher, student) if in_step else None)
    return timing.median_rate(lambda: jitted(state, batch, teacher_variables), _STEPS.value, _REPEATS.value)

  print(f'devices: {mesh.size} × {jax.devices()[0].device_kind}; batch {batch_size}; MLP student, CPU-width CNN '
        f'teacher; median of {_REPEATS.value} × {_STEPS.value} steps', flush=True)
  print('| step | steps/s | ex/s | × baseline |\n|---|---|---|---|')
  row = lambda what, steps, base: print(f'| {what} | {steps:,.0f} | {steps * batch_size:,.0f} | {steps / base:.2f} |',
                                        flush=True)
  base = rate('distillation')
  for name, spec in losses.LOSSES.items():
    if spec.uses_teacher and not spec.uses_features:
      row(f'{name}, cached teacher logits', base if name == 'distillation' else rate(name), base)
  base = rate('distillation', in_step=True)
  row('distillation, teacher in the step', base, base)
  for name, spec in losses.LOSSES.items():
    if spec.uses_features:  # the teacher's features: always in the step
      row(f'{name}, teacher in the step', rate(name, in_step=True), base)
  for views in _VIEWS:
    row(f'distillation, teacher in the step, function matching on {views}', rate('distillation', True, views), base)


if __name__ == '__main__':
  app.run(main)
