"""Train state, optimizers, the pure train step, the training loop and batched prediction.

All training state lives in one pytree (:class:`TrainState`) that Orbax saves
and restores. The step is a pure function of (state, batch, teacher variables);
:mod:`kd_jax.sharding` jits it over the device mesh. Dropout keys are
``fold_in(state.rng, state.step)`` and the data order is a function of
(seed, stream, epoch) (:mod:`kd_jax.input_pipeline`), so a run restored at
step k continues exactly. Nothing here knows a task's input shapes.
"""
import dataclasses
import functools
import time
from typing import Any, Callable, Dict, Optional, Sequence

from absl import logging
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np
import optax

from kd_jax import interrupts
from kd_jax import sharding
from kd_jax.input_pipeline import Batches
from kd_jax.losses import Loss

PENULTIMATE = 'penultimate'  # what every model sows as intermediates/penultimate (the input of its output layer)


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar
  params: Any
  batch_stats: Any
  opt_state: Any
  rng: jax.Array  # raw uint32 key; the step's dropout key is fold_in(rng, step)

  @property
  def variables(self):
    """The model's variables: what is evaluated and exported."""
    return {'params': self.params, 'batch_stats': self.batch_stats}

  @property
  def trainable(self):
    """What the optimizer updates."""
    return self.params

  def split(self, trainable):
    """``trainable`` as (the model's parameters, the objective's own or None)."""
    return trainable, None

  def with_trainable(self, trainable):
    return self.replace(params=trainable)


@flax.struct.dataclass
class TrainStateWithAux(TrainState):
  """The state of a student whose objective has trainable parameters of its own (``losses.Loss.init_aux``: FitNets'
  projector): trained beside the model's, never evaluated or exported. (A subclass, so that every other state keeps
  the checkpoint layout it had.)"""
  aux_params: Any

  @property
  def trainable(self):
    return self.params, self.aux_params

  def split(self, trainable):
    return trainable

  def with_trainable(self, trainable):
    return self.replace(params=trainable[0], aux_params=trainable[1])


def init_variables(model: nn.Module, rng: jax.Array, example_input):
  """The model's {'params', 'batch_stats'}; ``example_input`` (e.g. a batch of one) fixes the shapes."""
  variables = model.init({'params': rng}, example_input, train=False)
  return {'params': variables['params'], 'batch_stats': variables.get('batch_stats', {})}


def init_state(model: nn.Module, tx: optax.GradientTransformation, rng: jax.Array,
               example_input, init_aux: Optional[Callable[[jax.Array], Any]] = None) -> TrainState:
  """``init_aux(key)``: the objective's own parameters too (:func:`aux_initialiser`)."""
  @jax.jit  # one compilation instead of op-by-op dispatch of every initializer
  def init(rng):
    init_rng, dropout_rng = jax.random.split(rng)
    variables = init_variables(model, init_rng, example_input)
    fields = dict(step=jnp.zeros((), jnp.int32), params=variables['params'], batch_stats=variables['batch_stats'],
                  opt_state=None, rng=dropout_rng)
    state = (TrainState(**fields) if init_aux is None else
             TrainStateWithAux(**fields, aux_params=init_aux(jax.random.fold_in(init_rng, 1))))
    return state.replace(opt_state=tx.init(state.trainable))
  return init(rng)


def penultimate_size(model: nn.Module, example_input) -> int:
  """The size of the features ``model`` sows as intermediates/penultimate (from shapes only)."""
  def sown(key):
    variables = model.init({'params': key}, example_input, train=False)
    return model.apply(variables, example_input, train=False, mutable=['intermediates'])[1]
  return jax.eval_shape(sown, jax.random.PRNGKey(0))['intermediates'][PENULTIMATE][0].shape[-1]


def aux_initialiser(loss_fn: Loss, student: nn.Module, teacher: Optional[nn.Module], example_input):
  """``key -> the objective's own parameters`` for :func:`init_state`, sized to both models' features (FitNets'
  projector), or None when ``loss_fn`` has none."""
  if loss_fn.init_aux is None:
    return None
  sizes = penultimate_size(student, example_input), penultimate_size(teacher, example_input)
  return lambda key: loss_fn.init_aux(key, *sizes)


def apply_fn(model: nn.Module, compute_dtype: str = 'float32') -> Callable:
  """``model.apply`` computing in ``compute_dtype`` ('float32' or 'bfloat16'), with float32 logits.

  Mixed precision by casting: the float parameters and inputs are cast to the compute dtype for the pass (so every
  module computes in it, whatever the model), the float32 parameters remain the master copy and get float32
  gradients through the cast, and logits and batch-statistic updates come back in float32, so softmaxes, losses
  and running averages stay float32.
  """
  dtype = jnp.dtype(compute_dtype)
  if dtype == jnp.float32:
    return model.apply
  cast = lambda tree, to: jax.tree_util.tree_map(
      lambda x: x.astype(to) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)

  def apply(variables, inputs, **kwargs):
    out = model.apply({**variables, 'params': cast(variables['params'], dtype)}, cast(inputs, dtype), **kwargs)
    if kwargs.get('mutable'):
      return cast(out[0], jnp.float32), cast(out[1], jnp.float32)
    return cast(out, jnp.float32)

  return apply


# ----------------------------------------------------------------------------- optimizers

OPTIMIZERS = {'adam': optax.adam, 'radam': optax.radam, 'sgd': optax.sgd}
SCHEDULES = ('constant', 'cosine', 'exponential')


def make_schedule(cfg, total_steps: int) -> optax.Schedule:
  """``cfg.schedule``: constant, cosine (to 0 over the run) or exponential (× decay_rate every decay_steps)."""
  if cfg.schedule == 'constant':
    return optax.constant_schedule(cfg.learning_rate)
  if cfg.schedule == 'cosine':
    return optax.cosine_decay_schedule(cfg.learning_rate, decay_steps=max(total_steps, 1))
  if cfg.schedule == 'exponential':
    return optax.exponential_decay(cfg.learning_rate, transition_steps=cfg.decay_steps, decay_rate=cfg.decay_rate)
  raise ValueError(f'unknown learning-rate schedule {cfg.schedule!r}; choose constant, cosine or exponential')


def _kernels(params):
  """The mask of kernels and embeddings (parameters of rank ≥ 2): what Keras' kernel regularizers penalise."""
  return jax.tree_util.tree_map(lambda p: p.ndim >= 2, params)


def make_optimizer(cfg, total_steps: int) -> optax.GradientTransformation:
  """L1 and L2 penalties (``cfg.l1``, ``cfg.l2``), gradient clipping by global norm, then ``cfg.optimizer`` on
  ``cfg.schedule``.

  ``cfg.l2`` = λ adds the gradient of λ·Σw² and ``cfg.l1`` = λ that of λ·Σ|w| (λ·sign(w)) over the kernels
  and embeddings before clipping: Keras' ``kernel_regularizer=l1_l2(l1, l2)``, as the paper's code trains (the
  penalty's gradient joins the loss's before the clip, as in Keras).
  """
  if cfg.optimizer not in OPTIMIZERS:
    raise ValueError(f'unknown optimizer {cfg.optimizer!r}; choose one of {sorted(OPTIMIZERS)}')
  parts = []
  if cfg.get('l1', 0.0):
    parts.append(optax.masked(optax.stateless(lambda updates, params: jax.tree_util.tree_map(
        lambda g, p: g + cfg.l1 * jnp.sign(p), updates, params)), _kernels))
  if cfg.get('l2', 0.0):
    parts.append(optax.add_decayed_weights(2.0 * cfg.l2, mask=_kernels))
  if cfg.clip_norm:
    parts.append(optax.clip_by_global_norm(cfg.clip_norm))
  parts.append(OPTIMIZERS[cfg.optimizer](make_schedule(cfg, total_steps)))
  return optax.chain(*parts)


# ----------------------------------------------------------------------------- the step

@dataclasses.dataclass(frozen=True)
class StepOptions:
  """How a train step runs, beyond its model, optimizer, loss and teacher (:func:`make_train_step`).

  ``teacher_train_mode`` runs the teacher in the step with dropout and batch statistics (the paper code's quirk;
  default eval mode). ``output_logits`` adds the model's own training logits to the metrics (for online KD). Both
  models run in ``compute_dtype`` (:func:`apply_fn`). ``augment(key, inputs) -> inputs`` (the task's) changes the
  batch before either model sees it, with a key of the step's own (function matching: the teacher's targets are for
  the view the student trains on).
  """
  teacher_train_mode: bool = False
  output_logits: bool = False
  compute_dtype: str = 'float32'
  augment: Optional[Callable] = None


def make_train_step(model: nn.Module, tx: optax.GradientTransformation, loss_fn: Loss,
                    teacher: Optional[nn.Module] = None, options: StepOptions = StepOptions()):
  """The pure step ``(state, batch, teacher_variables) -> (state, metrics)``.

  With a ``teacher``, its logits are computed inside the step. Without one, teacher logits
  may come in the batch (``batch['teacher_logits']``: cached, or from an online
  teacher). Teacher logits never receive gradients. ``options``: :class:`StepOptions`.

  The batch holds ``inputs`` and ``label``; with ``weights`` (same shape as
  ``label``, e.g. a language model's non-padding targets) loss and accuracy are
  weighted means over the labelled positions instead of means over examples.
  """

  student_apply = apply_fn(model, options.compute_dtype)
  teacher_apply = apply_fn(teacher, options.compute_dtype) if teacher is not None else None
  augment = options.augment
  # A feature objective also reads what both models sow as intermediates/penultimate (losses.Loss declares it).
  features = loss_fn.features
  if features and teacher is None:
    raise ValueError('a feature objective needs the teacher in the step (its features), not cached logits')
  captured = ['intermediates'] if features else []

  def train_step(state: TrainState, batch: Dict[str, jax.Array], teacher_variables):
    step_key = jax.random.fold_in(state.rng, state.step)
    student_key, teacher_key = jax.random.split(step_key)
    inputs, labels = batch['inputs'], batch['label']
    if augment is not None:
      inputs = augment(jax.random.fold_in(step_key, 2), inputs)
    weights = batch['weights'] if 'weights' in batch else jnp.ones(labels.shape, jnp.float32)
    weighted_mean = lambda x: (x * weights).sum() / jnp.maximum(weights.sum(), 1.0)
    teacher_logits, teacher_features = batch.get('teacher_logits'), None
    if teacher is not None:
      if options.teacher_train_mode:
        teacher_logits, teacher_out = teacher_apply(teacher_variables, inputs, train=True,
                                                    rngs={'dropout': teacher_key}, mutable=['batch_stats', *captured])
      elif features:
        teacher_logits, teacher_out = teacher_apply(teacher_variables, inputs, train=False, mutable=captured)
      else:
        teacher_logits = teacher_apply(teacher_variables, inputs, train=False)
      if features:
        teacher_features = jax.lax.stop_gradient(teacher_out['intermediates'][PENULTIMATE][0])
    if teacher_logits is not None:
      teacher_logits = jax.lax.stop_gradient(teacher_logits)

    # A warm-up (DKD's) scales the teacher terms by the fraction of it done, counting this step.
    warmup = ({'teacher_weight': jnp.minimum((state.step + 1) / loss_fn.warmup_steps, 1.0)}
              if loss_fn.warmup_steps else {})

    def loss_of(trainable):
      params, aux = state.split(trainable)
      logits, updates = student_apply({'params': params, 'batch_stats': state.batch_stats}, inputs, train=True,
                                      rngs={'dropout': student_key}, mutable=['batch_stats', *captured])
      if features:
        student_features = updates['intermediates'][PENULTIMATE][0]
        own = {} if aux is None else {'aux': aux}
        loss = loss_fn(logits, teacher_logits, labels, student_features, teacher_features, **warmup, **own)
      else:
        loss = loss_fn(logits, teacher_logits, labels, **warmup)
      return weighted_mean(loss), (logits, updates['batch_stats'])

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_of, has_aux=True)(state.trainable)
    updates, opt_state = tx.update(grads, state.opt_state, state.trainable)
    new_state = state.with_trainable(optax.apply_updates(state.trainable, updates)).replace(
        step=state.step + 1, batch_stats=batch_stats, opt_state=opt_state)
    predictions = logits.argmax(-1)
    metrics = {'loss': loss, 'accuracy': weighted_mean(predictions == labels), 'grad_norm': optax.tree.norm(grads)}
    if teacher_logits is not None:
      metrics['teacher_agreement'] = weighted_mean(predictions == teacher_logits.argmax(-1))
    if options.output_logits:
      metrics['logits'] = logits
    return new_state, metrics

  return train_step


def make_online_step(teacher_step: Callable, student_step: Callable):
  """Online KD: one step of the teacher on gold labels and one of the student on the teacher's current logits.

  ``teacher_step`` must be built with ``StepOptions(output_logits=True)``; the student sees
  the teacher's training-mode logits of this batch, from before its update.
  The state is the pair ``(teacher_state, student_state)``.
  """

  def online_step(states, batch, unused_teacher_variables):
    teacher_state, student_state = states
    teacher_state, teacher_metrics = teacher_step(teacher_state, batch, None)
    teacher_logits = teacher_metrics.pop('logits')
    student_state, metrics = student_step(student_state, {**batch, 'teacher_logits': teacher_logits}, None)
    metrics.update({f'teacher_{k}': v for k, v in teacher_metrics.items()})
    return (teacher_state, student_state), metrics

  return online_step


# ----------------------------------------------------------------------------- the loop

def exported(state) -> TrainState:
  """The state whose model a phase exports and evaluates: ``state`` itself, or of online KD's (teacher, student)
  pair the student."""
  return state[-1] if isinstance(state, tuple) else state


def current_step(state) -> int:
  """The step of a TrainState, a stack of them, or an (online) pair of them."""
  if isinstance(state, tuple):
    state = state[-1]
  return int(sharding.to_host(state.step).reshape(-1)[0])


def compiler_options(*models: nn.Module) -> Dict[str, Any]:
  """The XLA options for compiling a step that trains ``models`` on this backend: what each model asks for in its
  ``training_compiler_options[backend]`` (e.g. the MNIST CNN on CPU). They change speed, not what is computed
  beyond float rounding, so an option this XLA does not know is left out with a warning."""
  asked = {}
  for model in models:
    asked.update(getattr(model, 'training_compiler_options', {}).get(jax.default_backend(), {}))
  return {name: value for name, value in asked.items() if _known_compiler_option(name, value)}


@functools.lru_cache(maxsize=None)
def _known_compiler_option(name: str, value: Any) -> bool:
  try:
    jax.jit(lambda x: x + 1, compiler_options={name: value}).lower(np.float32(0)).compile()
    return True
  except jax.errors.JaxRuntimeError as e:
    logging.warning('XLA option %s=%r left out (this jaxlib does not take it: %s); training runs, maybe slower',
                    name, value, e)
    return False


def compile_loop(step: Callable, batches: Batches, mesh: Mesh, steps_per_dispatch: int = 0,
                 compiler_options: Optional[Dict[str, Any]] = None):
  """``(run, resident)``: ``step`` jitted over the mesh, for :func:`fit`.

  ``steps_per_dispatch`` 0: ``run(state, batch, teacher_variables)`` takes one
  host batch per call. K > 0: the training set (``batches.resident()``) is placed
  on the device once, returned as ``resident``, and
  ``run(state, indices, variants, teacher_variables, resident)`` runs up to K steps
  in one program (``lax.scan``), gathering each step's batch on the device from its
  example indices ([S, B] or [S, N, B]) in its shape (``variants`` [S]: indices into
  ``batches.variants``; a split of several shapes gets one ``lax.switch`` branch per
  shape, so each step computes at its own batch's shape) and returning each step's
  metrics. The steps, their batches and their keys are the same either way.
  ``compiler_options``: :func:`compiler_options`.
  """
  if not steps_per_dispatch:
    return sharding.jit_data_parallel(step, mesh, batches.partition_spec, compiler_options), None
  arrays, gather = batches.resident()
  batch_sharding = NamedSharding(mesh, batches.partition_spec)

  def gathered_step(variant):  # one step on the batch gathered at its indices, in ``variant``'s shape
    def branch(state, idx, teacher_variables, resident):
      batch = jax.lax.with_sharding_constraint(gather(resident, idx, variant), batch_sharding)
      return step(state, batch, teacher_variables)
    return branch

  def run(state, indices, variants, teacher_variables, resident):
    branches = [gathered_step(variant) for variant in batches.variants]

    def body(state, step_inputs):
      idx, variant = step_inputs
      if len(branches) == 1:
        return branches[0](state, idx, teacher_variables, resident)
      return jax.lax.switch(variant, branches, state, idx, teacher_variables, resident)
    return jax.lax.scan(body, state, (indices, variants))

  replicated = NamedSharding(mesh, P())
  run = jax.jit(run, in_shardings=(replicated, NamedSharding(mesh, P(None, *batches.partition_spec)), replicated,
                                   replicated, replicated), out_shardings=(replicated, replicated), donate_argnums=0,
                compiler_options=compiler_options)
  return run, sharding.replicate(arrays, mesh)


AUTO_STEPS_PER_DISPATCH = 100


def resolve_steps_per_dispatch(steps_per_dispatch: int, batches: Batches) -> int:
  """A negative ``steps_per_dispatch`` means auto: 100 on accelerators, where one dispatch per step leaves a small
  model waiting on the host; 0 on CPU, where the gain is small and a CNN teacher inside the step ran ~20% slower
  inside ``lax.scan`` (measured: docs/performance.md), and 0 for data that cannot live on the device (a split
  without ``resident()``)."""
  if steps_per_dispatch >= 0:
    return steps_per_dispatch
  on_accelerator = jax.devices()[0].platform != 'cpu'
  return AUTO_STEPS_PER_DISPATCH if on_accelerator and batches.can_be_resident else 0


@dataclasses.dataclass(frozen=True)
class Loop:
  """How :func:`fit` runs a phase: to ``num_steps`` over ``mesh``, logging every ``log_every`` steps (to ``writer``
  too), saving with ``save(state)`` every ``checkpoint_every`` steps and at the end, ``snapshot(state)`` at each of
  ``snapshot_steps`` reached (the starting step included).

  ``steps_per_dispatch`` (:func:`compile_loop`): 0 runs one jitted step per host batch; K > 0 runs up to K steps
  per device program with the data on the device, cut at every logging, checkpoint and snapshot step; both run the
  same steps on the same batches and keys (bit for bit the same states, except where XLA compiles a step inside the
  scan differently — training a CNN: to rounding, which grows over many steps; docs/performance.md); negative:
  :func:`resolve_steps_per_dispatch`. ``compiler_options``:
  :func:`compiler_options` of the models the step trains. ``divergence_factor``: a loss above that factor ×
  max(1, the first step's loss) stops training; ``settings_field`` (e.g. ``config.student``) names the settings to
  change in that error. ``saved_checkpoints()`` says where the newest complete checkpoint is.
  """
  num_steps: int
  mesh: Mesh
  steps_per_dispatch: int = 0
  compiler_options: Optional[Dict[str, Any]] = None
  log_every: int = 100
  writer: Any = None
  save: Optional[Callable[[Any], None]] = None
  checkpoint_every: int = 0
  divergence_factor: float = 0.0
  settings_field: str = ''
  snapshot: Optional[Callable[[Any], None]] = None
  snapshot_steps: Sequence[int] = ()
  saved_checkpoints: Callable[[], str] = lambda: 'no checkpoint is kept of this run'


def fit(phase: str, step: Callable, state, batches: Batches, teacher_variables, loop: Loop):
  """Runs the pure ``step`` from the state's step to ``loop.num_steps`` with progress (rate, ETA) and metric
  logging (:class:`Loop`); ``teacher_variables`` are the step's third argument.

  Stops with FloatingPointError when a loss is non-finite or diverges (``loop.divergence_factor``); the losses
  since the last check are checked before every save, so a diverged state never replaces a good checkpoint.

  SIGINT/SIGTERM (:mod:`kd_jax.interrupts`): the loop stops after the dispatch in flight, saves there
  (``loop.save``) and raises ``StopRequested``; a second signal exits at once with ``loop.saved_checkpoints()`` as
  its message.
  """
  num_steps, mesh, save_fn, snapshot_fn = loop.num_steps, loop.mesh, loop.save, loop.snapshot
  snapshot_steps, log_every, checkpoint_every, writer = (loop.snapshot_steps, loop.log_every, loop.checkpoint_every,
                                                         loop.writer)
  start = current_step(state)
  if snapshot_fn is not None and start in snapshot_steps and start < num_steps:
    snapshot_fn(state)
  if start >= num_steps:
    logging.info('%s: already at step %d of %d, nothing to train', phase, start, num_steps)
    return state
  steps_per_dispatch = resolve_steps_per_dispatch(loop.steps_per_dispatch, batches)
  run, resident = compile_loop(step, batches, mesh, steps_per_dispatch, loop.compiler_options)
  instances = f', {len(batches.orders)} instances' if batches.stacked else ''
  dispatch = f', {steps_per_dispatch} steps per dispatch, data on the device' if steps_per_dispatch else ''
  logging.info('%s: training steps %d → %d (%d steps/epoch, batch %d%s, %d device(s)%s)', phase, start,
               num_steps, batches.steps_per_epoch, batches.batch_size, instances, mesh.size, dispatch)
  # Place state and teacher as the step returns them, so the step compiles once.
  state, teacher_variables = sharding.replicate((state, teacher_variables), mesh)
  guard = _LossGuard(phase, loop.divergence_factor, loop.settings_field or f'config.{phase}')
  stops = sorted({*(snapshot_steps if snapshot_fn is not None else ()), num_steps})
  pending, fetched, t_rate, rate_steps = [], [], None, 0  # metrics: on the device / fetched and checked

  def fetch():  # the metrics since the last fetch to host ([steps, ...] each), loss-checked
    per_step = sharding.to_host(pending)
    if not steps_per_dispatch:
      per_step = [jax.tree_util.tree_map(lambda x: x[None], m) for m in per_step]
    if per_step:
      fetched.append(_concat_steps(per_step))
      guard.check(fetched[-1]['loss'], fetched[-1].get('grad_norm'), done)
    pending.clear()

  step_now, saved_at = start, None
  with interrupts.StopRequests(phase, lambda: f'{phase} stopped at once; {loop.saved_checkpoints()}') as stop:
    while step_now < num_steps:
      done = _next_stop(step_now, max(steps_per_dispatch, 1), log_every, checkpoint_every, stops)
      if steps_per_dispatch:
        indices = np.stack([batches.indices(s) for s in range(step_now, done)])
        variants = np.asarray([batches.variant(s) for s in range(step_now, done)], np.int32)
        state, metrics = run(state, sharding.shard_batch(indices, mesh, P(None, *batches.partition_spec)), variants,
                             teacher_variables, resident)
      else:
        state, metrics = run(state, sharding.shard_batch(batches(step_now), mesh, batches.partition_spec),
                             teacher_variables)
      pending.append(metrics)
      step_now = done
      if t_rate is None:  # the first dispatch includes compilation; time the rest
        jax.block_until_ready(metrics)
        t_rate, rate_steps = time.perf_counter(), done
      if done % log_every == 0 or done == num_steps:
        fetch()
        summary = {k: float(np.mean(v)) for k, v in _concat_steps(fetched).items()}
        fetched.clear()
        elapsed = time.perf_counter() - t_rate
        rate = (done - rate_steps) / elapsed if elapsed > 0 and done > rate_steps else float('nan')
        eta = (num_steps - done) / rate if rate == rate and rate > 0 else float('nan')
        speed = (f'{rate * batches.examples_per_step:.0f} ex/s, ETA {_format_seconds(eta)}' if rate == rate
                 else 'rate from the next dispatch on (this one compiled)')
        logging.info('%s step %d/%d (%.0f%%, epoch %.2f) loss %.4f acc %.4f | %s', phase, done, num_steps,
                     100 * done / num_steps, done / batches.steps_per_epoch, summary['loss'], summary['accuracy'],
                     speed)
        if writer is not None:
          writer.write(phase, done, {**summary, 'examples_per_sec': rate * batches.examples_per_step})
      if save_fn is not None and checkpoint_every and done % checkpoint_every == 0 and done < num_steps:
        fetch()  # a diverged state never replaces a good checkpoint
        save_fn(state)
        saved_at = done
      if snapshot_fn is not None and done in snapshot_steps:
        snapshot_fn(state)
      signum = stop.poll()
      if signum is not None:  # SIGINT/SIGTERM: save at this step, then stop
        fetch()  # a diverged state is never saved
        if save_fn is not None and saved_at != done:
          save_fn(state)
        raise interrupts.StopRequested(signum, done, saved=save_fn is not None)
    # The final save, still inside: a signal that lands while it writes lets it finish, then stops the job (the
    # phase is complete on disk; the same command goes on with the next).
    if save_fn is not None:
      save_fn(state)
    signum = stop.poll()
    if signum is not None:
      raise interrupts.StopRequested(signum, num_steps, saved=save_fn is not None)
  return state


def _next_stop(step: int, steps_per_dispatch: int, log_every: int, checkpoint_every: int, stops) -> int:
  """The end of the dispatch that starts at ``step``: at most steps_per_dispatch steps, cut at the next logging,
  checkpoint or listed step (``stops`` holds the snapshot steps and the last step)."""
  ends = [next_multiple(step, steps_per_dispatch), next_multiple(step, log_every), *(s for s in stops if s > step)]
  if checkpoint_every:
    ends.append(next_multiple(step, checkpoint_every))
  return min(ends)


def next_multiple(step: int, every: int) -> int:
  return (step // every + 1) * every


def _concat_steps(history) -> Dict[str, np.ndarray]:
  """Dispatches' metrics ([S, ...] each) → one array per metric over all their steps."""
  return {key: np.concatenate([m[key] for m in history]) for key in history[0]}


class _LossGuard:
  """Non-finite and diverging losses, and non-finite gradients, stop training, with the step and the settings to
  change."""

  def __init__(self, phase: str, factor: float, field: str):
    self.phase, self.factor, self.field, self.bound = phase, factor, field, None

  def check(self, losses: np.ndarray, grad_norms: Optional[np.ndarray], step: int):
    """``losses``, ``grad_norms``: [steps, ...], the steps since the last check."""
    if not len(losses):
      return
    losses = np.asarray(losses, np.float64)
    if not np.all(np.isfinite(losses)):
      raise FloatingPointError(
          f'{self.phase}: non-finite loss in the steps up to {step}; lower {self.field}.learning_rate or check the '
          'inputs and loss settings')
    if grad_norms is not None and not np.all(np.isfinite(grad_norms)):
      # Clipping turns an infinite gradient into no update at all: the run would go on, untrained, to the end.
      raise FloatingPointError(
          f'{self.phase}: non-finite gradient norm in the steps up to {step} while the loss is finite: most likely '
          'a loss term weighted far too high (the objective\'s own weights in config.kd, e.g. config.kd.sp_weight); '
          'with clipping on, it would be no update at all. No checkpoint was written from this state.')
    if not self.factor:
      return
    if self.bound is None:  # the scale: the loss of the first step run (before any update, in a fresh run)
      self.bound = self.factor * max(1.0, float(losses[0].max()))
    worst = float(losses.max())
    if worst > self.bound:
      raise FloatingPointError(
          f'{self.phase}: the loss diverged ({worst:.4g} in the steps up to {step}, above config.divergence_factor '
          f'× max(1, its first value) = {self.bound:.4g}); lower {self.field}.learning_rate (or raise '
          'config.divergence_factor). No checkpoint was written from the diverged state.')


def _format_seconds(seconds: float) -> str:
  if seconds != seconds:
    return '?'
  minutes, secs = divmod(int(round(seconds)), 60)
  return f'{minutes}m{secs:02d}s'


# ----------------------------------------------------------------------------- evaluation

def make_predict_fn(model: nn.Module, mesh: Mesh, batch_size: int, compute_dtype: str = 'float32',
                    train_mode: bool = False, summarise: Optional[Callable] = None):
  """Returns ``predict(variables, inputs) -> logits`` (numpy), eval mode, batched and sharded over the mesh.

  ``batch_size`` is rounded up to a multiple of the devices, so one eval setting serves any slice (MNIST's 1,000
  becomes 1,008 on 16 devices); the last batch is padded either way.
  ``train_mode``: what a teacher run in training mode gives inside the KD step instead — dropout on (batch i's key
  is ``fold_in(PRNGKey(0), i)``) and batch statistics of each batch of ``batch_size``.
  ``summarise(logits, labels)``: applied to each batch inside the jitted forward; ``predict(variables, inputs,
  labels)`` then returns its per-example outputs instead of the logits (a language model's [batch, L, vocabulary]
  logits need not leave the device).
  """
  batch_size = -(-batch_size // mesh.size) * mesh.size  # a multiple of the device count (the inputs are padded)
  replicated, sharded = NamedSharding(mesh, P()), NamedSharding(mesh, P('data'))
  model_apply = apply_fn(model, compute_dtype)

  def forward(variables, x, labels, key):
    if not train_mode:
      logits = model_apply(variables, x, train=False)
    else:
      logits = model_apply(variables, x, train=True, rngs={'dropout': key}, mutable=['batch_stats'])[0]
    return logits if summarise is None else summarise(logits, labels)

  apply = jax.jit(forward, in_shardings=(replicated, sharded, sharded, replicated), out_shardings=sharded)

  def padded(array: np.ndarray) -> np.ndarray:
    return np.concatenate([array, np.zeros((-len(array) % batch_size,) + array.shape[1:], array.dtype)])

  def predict(variables, inputs: np.ndarray, labels: Optional[np.ndarray] = None) -> np.ndarray:
    if (labels is None) != (summarise is None):
      raise ValueError('predict takes labels exactly when make_predict_fn was given summarise')
    n = len(inputs)
    inputs, labels = padded(inputs), None if labels is None else padded(labels)
    outputs = [apply(variables, sharding.shard_batch(inputs[i:i + batch_size], mesh),
                     None if labels is None else sharding.shard_batch(labels[i:i + batch_size], mesh),
                     jax.random.fold_in(jax.random.PRNGKey(0), i // batch_size))
               for i in range(0, len(inputs), batch_size)]
    return np.concatenate(sharding.to_host(outputs))[:n]

  return predict
