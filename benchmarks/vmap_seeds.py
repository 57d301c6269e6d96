"""Seeds in parallel vs in sequence: one KD setup, N = 1, 2, 4, 8 instances.

  python benchmarks/vmap_seeds.py                       # CNN → MLP, teacher logits computed in the step
  python benchmarks/vmap_seeds.py --student=cnn --instances=1,4

For each N: the vmapped step of N instances (kd_jax.phases / kd_jax.seed_grid
path: stacked states, stacked teachers, [N, B, ...] batches) against N
separate single-instance steps run one after another. Prints instance-examples/s
(examples/s × instances) for both. Runs unchanged on a GPU or TPU.
"""

from absl import app
from absl import flags
import jax
import ml_collections
import numpy as np

from kd_jax import losses
from kd_jax import sharding
from kd_jax import phases
from kd_jax import training
from kd_jax.mnist import configs
from kd_jax.mnist import models
import timing  # benchmarks/timing.py

_TEACHER = flags.DEFINE_enum('teacher', 'cnn', ['cnn', 'mlp'], 'Teacher model.')
_STUDENT = flags.DEFINE_enum('student', 'mlp', ['cnn', 'mlp'], 'Student model.')
_CNN = flags.DEFINE_enum('cnn', 'cpu', ['cpu', 'paper'], 'CNN width.')
_INSTANCES = flags.DEFINE_list('instances', ['1', '2', '4', '8'], 'Numbers of instances N.')
_BATCH = flags.DEFINE_integer('batch_size', 128, 'Batch size per instance.')
_STEPS = flags.DEFINE_integer('steps', 10, 'Timed steps per measurement.')


def _model(name):
  return models.create_model(name, **configs.MODEL_SETTINGS[name][_CNN.value if name == 'cnn' else 'paper'])


def _steps_per_sec(step_fn, state, batch, teacher_variables):
  """Median over 3 timings of _STEPS steps, after compiling and 3 warm-up steps."""
  return timing.train_steps_per_sec(step_fn, state, batch, teacher_variables, _STEPS.value, warmup=4)


def main(_):
  mesh = sharding.data_mesh()
  teacher, student = _model(_TEACHER.value), _model(_STUDENT.value)
  opt = ml_collections.ConfigDict(dict(optimizer='adam', learning_rate=1e-3, schedule='constant', clip_norm=1.0))
  tx = training.make_optimizer(opt, 1000)
  kd = dict(temperature=5.0, alpha=1.0, scale='hinton')
  step = training.make_train_step(student, tx, losses.get_loss('distillation', kd), teacher)
  options = training.compiler_options(student)
  rng = np.random.default_rng(0)
  print(f'{_TEACHER.value}→{_STUDENT.value} KD, teacher in the step; {mesh.size} × {jax.devices()[0].device_kind}; '
        f'batch {_BATCH.value} per instance; {_STEPS.value} timed steps', flush=True)
  print(f'{"N":>3} {"vmapped inst-ex/s":>18} {"sequential inst-ex/s":>21} {"speed-up":>9}', flush=True)
  for n in map(int, _INSTANCES.value):
    seeds = list(range(n))
    batch = {'inputs': rng.uniform(size=(n, _BATCH.value, 28, 28, 1)).astype(np.float32),
             'label': rng.integers(0, 10, (n, _BATCH.value)).astype(np.int32)}
    example = batch['inputs'][0, :1]
    teachers = jax.vmap(lambda k: training.init_variables(teacher, k, example))(
        jax.random.split(jax.random.PRNGKey(9), n))
    stacked = phases.init_instances(student, tx, phases.instance_keys(seeds, phases.STUDENT_STREAM), True, example)
    vmapped = sharding.jit_data_parallel(jax.vmap(step), mesh, jax.sharding.PartitionSpec(None, 'data'), options)
    vmapped_rate = _steps_per_sec(vmapped, stacked, sharding.shard_batch(
        batch, mesh, jax.sharding.PartitionSpec(None, 'data')), teachers) * n * _BATCH.value
    single = sharding.jit_data_parallel(step, mesh, compiler_options=options)
    seconds = 0.0
    for k in range(n):  # N runs one after another: time adds up
      one = lambda tree: jax.tree_util.tree_map(lambda x: x[k], tree)  # pylint: disable=cell-var-from-loop
      state = phases.init_instances(student, tx, phases.instance_keys([k], phases.STUDENT_STREAM), False, example)
      seconds += 1.0 / _steps_per_sec(single, state, sharding.shard_batch(one(batch), mesh), one(teachers))
    sequential_rate = n * _BATCH.value / seconds
    print(f'{n:>3} {vmapped_rate:>18.0f} {sequential_rate:>21.0f} {vmapped_rate / sequential_rate:>8.2f}×',
          flush=True)


if __name__ == '__main__':
  app.run(main)
