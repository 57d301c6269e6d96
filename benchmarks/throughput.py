"""Examples/s of the three hot loops on MNIST-shaped data, on whatever devices JAX sees.

  python benchmarks/throughput.py                    # CPU-default CNN width
  python benchmarks/throughput.py --cnn=paper        # the paper's full-width CNN
  JAX_DEFAULT_PRNG_IMPL=unsafe_rbg python benchmarks/throughput.py   # dropout masks from another PRNG
  XLA_FLAGS=--xla_force_host_platform_device_count=2 python benchmarks/throughput.py

Prints, for the data-parallel jitted step of kd_jax.training:
  teacher training (CNN, gold labels), student KD training (MLP, teacher logits
  computed inside the step, the teacher in eval mode and — as the paper's
  distiller ran it — in training mode) and teacher-logit inference (eval mode).
Timing excludes the first (compiling) call and blocks on the results.
"""
from absl import app
from absl import flags
import jax
import ml_collections
import numpy as np

from kd_jax import losses
from kd_jax import sharding
from kd_jax import training
from kd_jax.mnist import configs
from kd_jax.mnist import models
import timing  # benchmarks/timing.py

_CNN = flags.DEFINE_enum('cnn', 'cpu', ['cpu', 'paper'], 'CNN width: the CPU default or the paper’s.')
_BATCH = flags.DEFINE_integer('batch_size', 128, 'Global batch size.')
_STEPS = flags.DEFINE_integer('steps', 20, 'Timed steps per measurement.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Measurements per loop; the median is printed.')


def main(_):
  mesh = sharding.data_mesh()
  batch_size = _BATCH.value
  sharding.check_batch_size(batch_size, mesh, '--batch_size')
  rng = np.random.default_rng(0)
  batch = sharding.shard_batch({'inputs': rng.uniform(size=(batch_size, 28, 28, 1)).astype(np.float32),
                                'label': rng.integers(0, 10, batch_size).astype(np.int32)}, mesh)
  opt = ml_collections.ConfigDict(dict(optimizer='adam', learning_rate=1e-4, schedule='constant', clip_norm=1.0))
  tx = training.make_optimizer(opt, 1000)
  cnn_kwargs = configs.MODEL_SETTINGS['cnn'][_CNN.value]
  teacher, student = models.create_model('cnn', **cnn_kwargs), models.create_model('mlp')
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  example = batch['inputs'][:1]
  teacher_state = jax.device_put(training.init_state(teacher, tx, jax.random.PRNGKey(0), example), replicated)
  student_state = jax.device_put(training.init_state(student, tx, jax.random.PRNGKey(1), example), replicated)
  teacher_variables = teacher_state.variables

  # State is not donated here so that the same state can be stepped repeatedly.
  def undonated(step_fn, *models_in_step):
    sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data'))
    return jax.jit(step_fn, in_shardings=(replicated, sharded, replicated), out_shardings=(replicated, replicated),
                   compiler_options=training.compiler_options(*models_in_step))

  teacher_step = undonated(training.make_train_step(teacher, tx, losses.get_loss('cross_entropy')), teacher)
  kd_step = undonated(training.make_train_step(
      student, tx, losses.get_loss('distillation', dict(temperature=5.0, alpha=1.0, scale='hinton')), teacher=teacher),
      teacher, student)
  kd_train_mode_step = undonated(training.make_train_step(
      student, tx, losses.get_loss('distillation', dict(temperature=5.0, alpha=1.0, scale='hinton')), teacher=teacher,
      options=training.StepOptions(teacher_train_mode=True)), teacher, student)
  infer = jax.jit(lambda v, x: teacher.apply(v, x, train=False))

  print(f'devices: {mesh.size} × {jax.devices()[0].device_kind}; CNN {_CNN.value} {dict(cnn_kwargs)}; '
        f'batch {batch_size}; PRNG {jax.config.jax_default_prng_impl}; median of {_REPEATS.value} × {_STEPS.value} '
        'steps', flush=True)
  loops = {
      'teacher training (CNN, gold labels)': lambda: teacher_step(teacher_state, batch, None),
      'student KD training (MLP + CNN teacher in step)': lambda: kd_step(student_state, batch, teacher_variables),
      'student KD training, teacher in training mode': lambda: kd_train_mode_step(student_state, batch,
                                                                                teacher_variables),
      'teacher-logit inference (CNN, eval mode)': lambda: infer(teacher_variables, batch['inputs']),
  }
  for name, fn in loops.items():
    steps_per_sec = timing.median_rate(fn, _STEPS.value, _REPEATS.value)
    print(f'{name:50s} {steps_per_sec * batch_size:10.0f} examples/s', flush=True)


if __name__ == '__main__':
  app.run(main)
