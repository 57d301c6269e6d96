"""kd_jax's own jitted steps vs an equivalent plain PyTorch loop, side by side in one run (examples/s, medians).

    pip install -e '.[bench]'                  # torch: a benchmark extra, never a kd_jax dependency
    python benchmarks/vs_pytorch.py [--threads=2] [--repeats=5] [--seconds=2] [--rows=mlp,kd_cached] [--out=F.json]

Each row runs the same model (the paper's maxout/BatchNorm/dropout CNN at both widths, the BatchNorm MLP, the SVA
LSTM and Transformer), the same shapes, Adam with gradient clipping at 1.0, batch 128 (inference: 1000), in training
mode. kd_jax: the library's step (``training.make_train_step``, jitted over the device mesh as training does,
with the trained model's ``training.compiler_options``, state donated), each batch handed from host numpy as the
training loop does. PyTorch: a plain loop (zero_grad, forward, loss, backward, clip, step) on tensors made from the
same numpy batches, NCHW for convolutions (its native layout). Timing excludes compilation and warm-up, blocks on
the results, and is the median of ``--repeats`` measurements of about ``--seconds`` each. Both libraries get the
same CPU threads (``--threads``: process affinity and torch.set_num_threads). On a GPU machine the same command times
JAX's GPU backend against PyTorch on CUDA.

The ``*_device`` rows keep an MNIST-sized training set on the device: kd_jax runs 100 steps per call
(``training.compile_loop``, as ``config.steps_per_dispatch=100`` trains), PyTorch indexes a tensor already on the
device, 100 steps per call too. After the table, each "teacher in the step" row is set against its bound: the
teacher's forward pass and the student's step on given logits, timed apart.
"""
import argparse
import json
import os
import platform
import sys
import time


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--threads', type=int, default=len(os.sched_getaffinity(0)),
                      help='CPU threads for both libraries (default: all this process may use)')
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--seconds', type=float, default=2.0, help='target length of one measurement')
  parser.add_argument('--rows', default='', help='comma-separated subset of the rows (default: all)')
  parser.add_argument('--out', default='', help='also write the table as JSON here')
  return parser.parse_args(argv)


ARGS = parse_args(sys.argv[1:])
os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:ARGS.threads])  # before either library starts its pools

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import ml_collections  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import torch  # pylint: disable=g-import-not-at-top,wrong-import-position
from torch import nn  # pylint: disable=g-import-not-at-top,wrong-import-position
import torch.nn.functional as F  # pylint: disable=g-import-not-at-top,wrong-import-position

from kd_jax import input_pipeline  # pylint: disable=g-import-not-at-top,wrong-import-position
from kd_jax import losses  # pylint: disable=g-import-not-at-top,wrong-import-position
from kd_jax import sharding  # pylint: disable=g-import-not-at-top,wrong-import-position
from kd_jax import training  # pylint: disable=g-import-not-at-top,wrong-import-position
from kd_jax.mnist import configs as mnist_configs  # pylint: disable=g-import-not-at-top,wrong-import-position
from kd_jax.mnist import data as mnist_data  # pylint: disable=g-import-not-at-top,wrong-import-position
from kd_jax.mnist import models as mnist_models  # pylint: disable=g-import-not-at-top,wrong-import-position
from kd_jax.sva import configs as sva_configs  # pylint: disable=g-import-not-at-top,wrong-import-position
from kd_jax.sva import models as sva_models  # pylint: disable=g-import-not-at-top,wrong-import-position

BATCH, EVAL_BATCH, NUM_BATCHES = 128, 1000, 8
TRAIN_SIZE, STEPS_PER_DISPATCH = 60_000, 100  # the device-resident rows: an MNIST-sized training set
TEMPERATURE = 5.0
VOCAB, SEQ_LEN = 10_000, 32
OPT = ml_collections.ConfigDict(dict(optimizer='adam', learning_rate=1e-4, schedule='constant', clip_norm=1.0))
DEVICE = torch.device('cuda' if jax.default_backend() == 'gpu' and torch.cuda.is_available() else 'cpu')
KD = losses.get_loss('distillation', dict(temperature=TEMPERATURE, alpha=1.0, scale='hinton'))
CE = losses.get_loss('cross_entropy')
torch.set_num_threads(ARGS.threads)


# ----------------------------------------------------------------------------- the PyTorch models

class TorchCNN(nn.Module):
  """kd_jax.mnist.models.CNN: [conv → maxout → BN → ReLU → max-pool → dropout] × 3 → global average pool → dense."""

  def __init__(self, filters, maxout_units, pool_sizes=(1, 2, 2), kernel_size=3, dropout_rate=0.3,
               bn_momentum=0.99, num_classes=10):
    super().__init__()
    self.units, self.pools = list(maxout_units), list(pool_sizes)
    channels = [1] + [u for u in maxout_units[:-1]]
    self.convs = nn.ModuleList(nn.Conv2d(c, f, kernel_size, bias=f != u)
                               for c, f, u in zip(channels, filters, maxout_units))
    self.norms = nn.ModuleList(nn.BatchNorm2d(u, eps=1e-3, momentum=1 - bn_momentum) for u in maxout_units)
    self.dropout = nn.Dropout(dropout_rate)
    self.out = nn.Linear(maxout_units[-1], num_classes)

  def forward(self, x):
    for conv, norm, units, pool in zip(self.convs, self.norms, self.units, self.pools):
      x = conv(x)
      n, c, h, w = x.shape
      x = x.view(n, units, c // units, h, w).amax(2)  # maxout over consecutive channels, as kd_jax groups them
      x = F.relu(norm(x))
      if pool > 1:
        x = F.max_pool2d(x, pool)
      x = self.dropout(x)
    return self.out(x.mean((2, 3)))


class TorchMLP(nn.Module):
  """kd_jax.mnist.models.MLP: 784 → [Dense → ReLU → BN → dropout] × 3 → dense."""

  def __init__(self, hidden_sizes=(512, 128, 32), dropout_rate=0.1, bn_momentum=0.99, num_classes=10):
    super().__init__()
    layers, width = [nn.Flatten()], 784
    for size in hidden_sizes:
      layers += [nn.Linear(width, size), nn.ReLU(), nn.BatchNorm1d(size, eps=1e-3, momentum=1 - bn_momentum),
                 nn.Dropout(dropout_rate)]
      width = size
    self.body, self.out = nn.Sequential(*layers), nn.Linear(width, num_classes)

  def forward(self, x):
    return self.out(self.body(x))


class TorchLSTM(nn.Module):
  """kd_jax.sva.models.LSTM (classification): embedding → stacked LSTMs → dense at the last token."""

  def __init__(self, vocab_size, embed_dim=256, hidden_size=256, num_layers=2, dropout_rate=0.2):
    super().__init__()
    self.embed, self.dropout = nn.Embedding(vocab_size, embed_dim), nn.Dropout(dropout_rate)
    self.lstm = nn.LSTM(embed_dim, hidden_size, num_layers, batch_first=True, dropout=dropout_rate)
    self.out = nn.Linear(hidden_size, 2)

  def forward(self, tokens):
    x, _ = self.lstm(self.dropout(self.embed(tokens)))
    return self.out(self.dropout(x)[:, -1])  # the benchmark's sequences have no padding


class TorchTransformer(nn.Module):
  """kd_jax.sva.models.Transformer (bidirectional, classification): pre-LN blocks, readout at position 0."""

  def __init__(self, vocab_size, num_layers=6, num_heads=8, dim=128, max_length=512, embedding_dropout=0.2,
               residual_dropout=0.4, attention_dropout=0.6):
    super().__init__()
    del attention_dropout  # torch's encoder layer has one dropout rate; the cost is the same
    self.embed, self.positions = nn.Embedding(vocab_size, dim), nn.Parameter(torch.randn(max_length, dim) * 0.02)
    self.dropout = nn.Dropout(embedding_dropout)
    self.blocks = nn.ModuleList(nn.TransformerEncoderLayer(dim, num_heads, 4 * dim, residual_dropout, 'gelu',
                                                           batch_first=True, norm_first=True)
                                for _ in range(num_layers))
    self.norm, self.out = nn.LayerNorm(dim), nn.Linear(dim, 2)

  def forward(self, tokens):
    x = self.dropout(self.embed(tokens) + self.positions[:tokens.shape[1]])
    for block in self.blocks:
      x = block(x)
    return self.out(self.norm(x)[:, 0])


# ----------------------------------------------------------------------------- the loops

def _timed(step, sync):
  """Median examples-per-call rate of ``step`` (steps/s), after warm-up, over ARGS.repeats measurements."""
  for _ in range(3):
    step()
  sync()
  start = time.perf_counter()
  for _ in range(3):
    step()
  sync()
  steps = max(3, int(ARGS.seconds / max((time.perf_counter() - start) / 3, 1e-6)))
  rates = []
  for _ in range(ARGS.repeats):
    start = time.perf_counter()
    for _ in range(steps):
      step()
    sync()
    rates.append(steps / (time.perf_counter() - start))
  return float(np.median(rates))


class JaxLoop:
  """kd_jax's train step, jitted over the mesh with the state donated, fed host batches as training does."""

  def __init__(self, model, loss, batches, teacher=None, example=None, teacher_train_mode=False):
    self.mesh = sharding.data_mesh()
    tx = training.make_optimizer(OPT, 10_000)
    example = batches[0]['inputs'][:1] if example is None else example
    self.state = sharding.replicate(training.init_state(model, tx, jax.random.PRNGKey(0), example), self.mesh)
    self.teacher_variables = None if teacher is None else sharding.replicate(
        training.init_variables(teacher, jax.random.PRNGKey(1), example), self.mesh)
    step = training.make_train_step(model, tx, loss, teacher,
                                    training.StepOptions(teacher_train_mode=teacher_train_mode))
    self.step_fn = sharding.jit_data_parallel(step, self.mesh, compiler_options=training.compiler_options(
        *filter(None, (model, teacher))))
    self.batches, self.i = batches, 0

  def __call__(self):
    batch = sharding.shard_batch(self.batches[self.i % len(self.batches)], self.mesh)
    self.state, self.metrics = self.step_fn(self.state, batch, self.teacher_variables)
    self.i += 1

  def sync(self):
    jax.block_until_ready(self.state)


class JaxDeviceLoop(JaxLoop):
  """kd_jax's training loop with the training set on the device: STEPS_PER_DISPATCH steps per call
  (``training.compile_loop``), batches gathered on the device in the loop's shuffled order."""

  def __init__(self, model, loss, split, teacher_logits=None, teacher=None, teacher_train_mode=False):
    super().__init__(model, loss, [split.batch(np.arange(1))], teacher=teacher)
    batches = input_pipeline.Batches(split, [input_pipeline.BatchOrder(len(split), BATCH, 0, 1)],
                                     teacher_logits=teacher_logits)
    step = training.make_train_step(model, training.make_optimizer(OPT, 10_000), loss, teacher,
                                    training.StepOptions(teacher_train_mode=teacher_train_mode))
    self.run, self.resident = training.compile_loop(step, batches, self.mesh, STEPS_PER_DISPATCH,
                                                    training.compiler_options(*filter(None, (model, teacher))))
    self.indices = [np.stack([batches.indices(s) for s in range(k, k + STEPS_PER_DISPATCH)])
                    for k in range(0, batches.steps_per_epoch - STEPS_PER_DISPATCH, STEPS_PER_DISPATCH)]
    self.indices = [sharding.shard_batch(i, self.mesh, jax.sharding.PartitionSpec(None, 'data'))
                    for i in self.indices]
    self.variants = np.zeros(STEPS_PER_DISPATCH, np.int32)  # MNIST batches have one shape

  def __call__(self):
    self.state, self.metrics = self.run(self.state, self.indices[self.i % len(self.indices)], self.variants,
                                        self.teacher_variables, self.resident)
    self.i += 1


class TorchLoop:
  """The plain PyTorch loop: zero_grad, forward (teacher under no_grad), loss, backward, clip, Adam step."""

  def __init__(self, model, loss, batches, teacher=None, teacher_train_mode=False):
    self.model, self.loss, self.teacher = model.to(DEVICE).train(), loss, teacher
    if teacher is not None:
      self.teacher = teacher.to(DEVICE).train(teacher_train_mode)
    self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-4)
    self.batches, self.i = batches, 0

  def next_batch(self):
    return {k: torch.from_numpy(v).to(DEVICE) for k, v in self.batches[self.i % len(self.batches)].items()}

  def __call__(self):
    batch = self.next_batch()
    self.i += 1
    self.opt.zero_grad(set_to_none=True)
    teacher_logits = batch.get('teacher_logits')
    if self.teacher is not None:
      with torch.no_grad():
        teacher_logits = self.teacher(batch['inputs'])
    loss = self.loss(self.model(batch['inputs']), teacher_logits, batch['label'])
    loss.backward()
    nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
    self.opt.step()

  def sync(self):
    if DEVICE.type == 'cuda':
      torch.cuda.synchronize()


class TorchDeviceLoop(TorchLoop):
  """The plain PyTorch loop with the training set already on the device, each batch indexed there."""

  def __init__(self, model, loss, split, teacher_logits=None):
    super().__init__(model, loss, [])
    self.data = {'inputs': split.images, 'label': split.labels}
    if teacher_logits is not None:
      self.data['teacher_logits'] = teacher_logits
    self.data = {k: torch.from_numpy(v).to(DEVICE) for k, v in self.data.items()}
    self.order = torch.randperm(len(split), device=DEVICE)

  def next_batch(self):
    start = (self.i * BATCH) % (len(self.order) - BATCH)
    return {k: v[self.order[start:start + BATCH]] for k, v in self.data.items()}

  def __call__(self):  # as many steps per call as kd_jax's device loop
    for _ in range(STEPS_PER_DISPATCH):
      super().__call__()


class TorchGraphLoop(TorchLoop):
  """PyTorch as fast as a performance engineer would run it on a GPU: the training set on the device, TF32 allowed,
  capturable Adam, and STEPS_PER_DISPATCH whole steps (batch gather, teacher, forward, loss, backward, clip, step)
  captured in one CUDA graph that each call replays, after a fresh slice of the shuffled order is copied into the
  graph's index tensor. CUDA only."""

  def __init__(self, model, loss, split, teacher=None, teacher_train_mode=False):
    super().__init__(model, loss, [], teacher, teacher_train_mode)
    self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-4, capturable=True)
    nchw = isinstance(model, TorchCNN) or isinstance(teacher, TorchCNN)  # the MLP flattens either layout
    inputs = torch.from_numpy(split.images.transpose(0, 3, 1, 2).copy() if nchw else split.images)
    self.data = {'inputs': inputs.to(DEVICE), 'label': torch.from_numpy(split.labels).to(DEVICE)}
    self.order = torch.randperm(len(split), device=DEVICE)
    self.indices = self.order[:STEPS_PER_DISPATCH * BATCH].view(STEPS_PER_DISPATCH, BATCH).clone()
    # TF32 for the kernels captured here only (a replay runs them as captured): the plain loops stay float32.
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
      side = torch.cuda.Stream()  # warm-up off the capture stream: optimizer state, cuDNN plans (PyTorch's recipe)
      side.wait_stream(torch.cuda.current_stream())
      with torch.cuda.stream(side):
        self._steps(3)
      torch.cuda.current_stream().wait_stream(side)
      self.graph = torch.cuda.CUDAGraph()
      self.opt.zero_grad(set_to_none=True)
      with torch.cuda.graph(self.graph):
        self._steps(STEPS_PER_DISPATCH)
    finally:
      torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32

  def _steps(self, count):
    for k in range(count):
      inputs, labels = self.data['inputs'][self.indices[k]], self.data['label'][self.indices[k]]
      self.opt.zero_grad(set_to_none=True)
      teacher_logits = None
      if self.teacher is not None:
        with torch.no_grad():
          teacher_logits = self.teacher(inputs)
      self.loss(self.model(inputs), teacher_logits, labels).backward()
      nn.utils.clip_grad_norm_(self.model.parameters(), 1.0, foreach=True)
      self.opt.step()

  def __call__(self):
    span = STEPS_PER_DISPATCH * BATCH
    start = (self.i * span) % (len(self.order) - span)
    self.indices.copy_(self.order[start:start + span].view(STEPS_PER_DISPATCH, BATCH))
    self.graph.replay()
    self.i += 1


def torch_cross_entropy(logits, unused_teacher_logits, labels):
  return F.cross_entropy(logits, labels.long())


def torch_distillation(logits, teacher_logits, unused_labels):
  """kd_jax's distillation loss, alpha 1, Hinton scale: T² · KL(softmax(t/T) ‖ softmax(s/T))."""
  log_p = F.log_softmax(logits / TEMPERATURE, -1)
  return TEMPERATURE ** 2 * F.kl_div(log_p, F.log_softmax(teacher_logits / TEMPERATURE, -1), log_target=True,
                                     reduction='batchmean')


# ----------------------------------------------------------------------------- rows

def image_batches(nchw: bool, teacher_logits: bool = False, size: int = BATCH):
  rng = np.random.default_rng(0)
  out = []
  for _ in range(NUM_BATCHES):
    images = rng.uniform(size=(size, 28, 28, 1)).astype(np.float32)
    batch = {'inputs': images.transpose(0, 3, 1, 2).copy() if nchw else images,
             'label': rng.integers(0, 10, size).astype(np.int32)}
    if teacher_logits:
      batch['teacher_logits'] = rng.normal(size=(size, 10)).astype(np.float32)
    out.append(batch)
  return out


def resident_split():
  """An MNIST-sized training set of k/255 images (kd_jax keeps them as uint8 on the device)."""
  rng = np.random.default_rng(0)
  return mnist_data.Split((rng.integers(0, 256, (TRAIN_SIZE, 28, 28, 1)) / 255.0).astype(np.float32),
                          rng.integers(0, 10, TRAIN_SIZE).astype(np.int32))


def resident_logits():
  return np.random.default_rng(1).normal(size=(TRAIN_SIZE, 10)).astype(np.float32)


def token_batches():
  rng = np.random.default_rng(0)
  return [{'inputs': rng.integers(4, VOCAB, (BATCH, SEQ_LEN)).astype(np.int32),
           'label': rng.integers(0, 2, BATCH).astype(np.int32)} for _ in range(NUM_BATCHES)]


def cnn_kwargs(width):
  return dict(mnist_configs.MODEL_SETTINGS['cnn'][width])


def jax_inference(model, nhwc_batches):
  variables = training.init_variables(model, jax.random.PRNGKey(0), nhwc_batches[0]['inputs'][:1])
  predict = training.make_predict_fn(model, sharding.data_mesh(), EVAL_BATCH)
  state = {'i': 0}

  def step():
    predict(variables, nhwc_batches[state['i'] % len(nhwc_batches)]['inputs'])
    state['i'] += 1
  return step, lambda: None  # predict returns numpy: already synchronous


def torch_inference(model, nchw_batches):
  model = model.to(DEVICE).eval()
  state = {'i': 0}

  def step():
    with torch.no_grad():
      model(torch.from_numpy(nchw_batches[state['i'] % len(nchw_batches)]['inputs']).to(DEVICE)).cpu()
    state['i'] += 1
  return step, lambda: None  # .cpu() waits for the result, like kd_jax's numpy output


def rows():
  """name -> (examples per call, make kd_jax loop, make PyTorch loop); each make returns (step, sync)."""
  loop = lambda obj: (obj, obj.sync)
  table = {}
  for width in ('paper', 'cpu'):
    cnn = lambda w=width: mnist_models.create_model('cnn', **cnn_kwargs(w))
    torch_cnn = lambda w=width: TorchCNN(**cnn_kwargs(w))
    table[f'cnn_{width}_train'] = (f'{width}-width CNN training', BATCH,
                                   lambda c=cnn: loop(JaxLoop(c(), CE, image_batches(False))),
                                   lambda t=torch_cnn: loop(TorchLoop(t(), torch_cross_entropy, image_batches(True))))
    table[f'kd_{width}_teacher'] = (
        f'KD, {width}-width CNN teacher in the step, MLP student', BATCH,
        lambda c=cnn: loop(JaxLoop(mnist_models.create_model('mlp'), KD, image_batches(False), teacher=c())),
        lambda t=torch_cnn: loop(TorchLoop(TorchMLP(), torch_distillation, image_batches(True), teacher=t())))
    table[f'kd_{width}_train_teacher'] = (
        f'KD, {width}-width CNN teacher in training mode in the step (the paper code\'s), MLP student', BATCH,
        lambda c=cnn: loop(JaxLoop(mnist_models.create_model('mlp'), KD, image_batches(False), teacher=c(),
                                   teacher_train_mode=True)),
        lambda t=torch_cnn: loop(TorchLoop(TorchMLP(), torch_distillation, image_batches(True), teacher=t(),
                                           teacher_train_mode=True)))
    table[f'infer_{width}'] = (f'{width}-width CNN inference (eval, batch {EVAL_BATCH})', EVAL_BATCH,
                               lambda c=cnn: jax_inference(c(), image_batches(False, size=EVAL_BATCH)),
                               lambda t=torch_cnn: torch_inference(t(), image_batches(True, size=EVAL_BATCH)))
  for key, title, logits in (('mlp_device', 'MLP training', None),
                             ('kd_cached_device', 'KD from cached logits (MLP student)', resident_logits())):
    table[key] = (f'{title}, data on the device, {STEPS_PER_DISPATCH} steps per call', BATCH * STEPS_PER_DISPATCH,
                  lambda l=logits: loop(JaxDeviceLoop(mnist_models.create_model('mlp'), KD if l is not None else CE,
                                                      resident_split(), l)),
                  lambda l=logits: loop(TorchDeviceLoop(TorchMLP(), torch_distillation if l is not None
                                                        else torch_cross_entropy, resident_split(), l)))
  table['mlp_train'] = ('MLP training', BATCH,
                        lambda: loop(JaxLoop(mnist_models.create_model('mlp'), CE, image_batches(False))),
                        lambda: loop(TorchLoop(TorchMLP(), torch_cross_entropy, image_batches(False))))
  table['kd_cached'] = ('KD from cached logits (MLP student)', BATCH,
                        lambda: loop(JaxLoop(mnist_models.create_model('mlp'), KD, image_batches(False, True))),
                        lambda: loop(TorchLoop(TorchMLP(), torch_distillation, image_batches(False, True))))
  for name, torch_cls in (('lstm', TorchLSTM), ('transformer', TorchTransformer)):
    kwargs = sva_configs.MODEL_KWARGS[name]
    table[f'sva_{name}_train'] = (
        f'SVA {name} training (length {SEQ_LEN}, vocabulary {VOCAB})', BATCH,
        lambda n=name, k=kwargs: loop(JaxLoop(sva_models.create_model(n, vocab_size=VOCAB, **k), CE, token_batches())),
        lambda c=torch_cls, k=kwargs: loop(TorchLoop(c(VOCAB, **k), torch_cross_entropy, token_batches())))
  return table


def strongest_rows():
  """row -> (title, make kd_jax's device loop, make the strongest PyTorch loop (:class:`TorchGraphLoop`)), both with
  the training set on the device and 100 steps a call, for the MLP, the paper-width CNN and the KD step with the
  paper code's training-mode CNN teacher."""
  paper_cnn = lambda: mnist_models.create_model('cnn', **cnn_kwargs('paper'))
  torch_paper_cnn = lambda: TorchCNN(**cnn_kwargs('paper'))
  mlp = lambda: mnist_models.create_model('mlp')
  return {
      'mlp_device': ('MLP training', lambda: JaxDeviceLoop(mlp(), CE, resident_split()),
                     lambda: TorchGraphLoop(TorchMLP(), torch_cross_entropy, resident_split())),
      'cnn_paper_train': ('paper-width CNN training', lambda: JaxDeviceLoop(paper_cnn(), CE, resident_split()),
                          lambda: TorchGraphLoop(torch_paper_cnn(), torch_cross_entropy, resident_split())),
      'kd_paper_train_teacher': (
          'KD, paper-width CNN teacher in training mode in the step, MLP student',
          lambda: JaxDeviceLoop(mlp(), KD, resident_split(), teacher=paper_cnn(), teacher_train_mode=True),
          lambda: TorchGraphLoop(TorchMLP(), torch_distillation, resident_split(), teacher=torch_paper_cnn(),
                                 teacher_train_mode=True)),
  }


def kd_bound(width: str, kd) -> float:
  """The KD step's bound: the examples/s of a teacher forward pass (eval, host batches, as inside the step) and a
  student step on given logits, run one after the other — each measured apart."""
  teacher = mnist_models.create_model('cnn', **cnn_kwargs(width))
  batches, mesh = image_batches(False), sharding.data_mesh()
  variables = sharding.replicate(training.init_variables(teacher, jax.random.PRNGKey(1), batches[0]['inputs'][:1]),
                                 mesh)
  forward = jax.jit(lambda v, x: teacher.apply(v, x, train=False))
  state = {'i': 0, 'out': None}

  def forward_step():
    state['out'] = forward(variables, sharding.shard_batch(batches[state['i'] % len(batches)], mesh)['inputs'])
    state['i'] += 1
  forward_rate = BATCH * _timed(forward_step, lambda: jax.block_until_ready(state['out']))
  student = JaxLoop(mnist_models.create_model('mlp'), kd, image_batches(False, True))
  student_rate = BATCH * _timed(student, student.sync)
  return 1.0 / (1.0 / forward_rate + 1.0 / student_rate)


def main():
  table = rows()
  chosen = [r for r in ARGS.rows.split(',') if r] or list(table)
  unknown = sorted(set(chosen) - set(table))
  if unknown:
    raise SystemExit(f'vs_pytorch: error: unknown row(s) {unknown}; choose from {sorted(table)}')
  device = f'{jax.devices()[0].device_kind} ({jax.default_backend()})'
  header = (f'kd_jax (JAX {jax.__version__}) on {device} vs PyTorch {torch.__version__} on {DEVICE}; '
            f'{ARGS.threads} CPU thread(s) each; {platform.processor() or platform.machine()}; '
            f'median of {ARGS.repeats} × ~{ARGS.seconds:g} s')
  print(header, flush=True)
  print('| loop | kd_jax ex/s | PyTorch ex/s | kd_jax / PyTorch |\n|---|---|---|---|', flush=True)
  results = []
  for key in chosen:
    title, examples, make_jax, make_torch = table[key]
    jax_rate = examples * _timed(*make_jax())
    torch_rate = examples * _timed(*make_torch())
    results.append({'row': key, 'loop': title, 'kd_jax': jax_rate, 'pytorch': torch_rate,
                    'ratio': jax_rate / torch_rate})
    print(f'| {title} | {jax_rate:,.0f} | {torch_rate:,.0f} | {jax_rate / torch_rate:.2f}× |', flush=True)
  strongest = {key: row for key, row in strongest_rows().items() if key in chosen}
  if strongest and DEVICE.type != 'cuda':
    print(f'\n(Against the strongest PyTorch loop — CUDA graphs of {STEPS_PER_DISPATCH} whole steps, TF32, capturable '
          f'Adam, data on the device — skipped: it needs a CUDA device, and this run has {DEVICE.type}.)', flush=True)
  elif strongest:
    print(f'\n| data on the device, {STEPS_PER_DISPATCH} steps per call | kd_jax ex/s | strongest PyTorch ex/s (CUDA '
          'graphs, TF32) | kd_jax / strongest |\n|---|---|---|---|', flush=True)
  for key, (title, make_jax, make_torch) in strongest.items() if DEVICE.type == 'cuda' else ():
    jax_loop, graph_loop = make_jax(), make_torch()
    jax_rate = BATCH * STEPS_PER_DISPATCH * _timed(jax_loop, jax_loop.sync)
    torch_rate = BATCH * STEPS_PER_DISPATCH * _timed(graph_loop, graph_loop.sync)
    results.append({'row': f'{key}_vs_strongest', 'loop': title, 'kd_jax_device': jax_rate,
                    'pytorch_strongest': torch_rate, 'ratio': jax_rate / torch_rate})
    print(f'| {title} | {jax_rate:,.0f} | {torch_rate:,.0f} | {jax_rate / torch_rate:.2f}× |', flush=True)
  in_step = [r for r in results if r['row'].endswith('_teacher') and not r['row'].endswith('_train_teacher')]
  if in_step:
    print('\n| KD step, teacher in the step | kd_jax ex/s | bound ex/s (teacher forward + student step apart) | '
          'share of the bound |\n|---|---|---|---|', flush=True)
  for r in in_step:
    r['bound'] = kd_bound(r['row'].split('_')[1], KD)
    print(f'| {r["loop"]} | {r["kd_jax"]:,.0f} | {r["bound"]:,.0f} | {100 * r["kd_jax"] / r["bound"]:.0f}% |',
          flush=True)
  if ARGS.out:
    with open(ARGS.out, 'w') as f:
      json.dump({'setting': header, 'threads': ARGS.threads, 'rows': results}, f, indent=1)


if __name__ == '__main__':
  main()
