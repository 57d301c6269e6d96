"""The paper's third kind of evidence, for any task: training paths, converged solutions, shared errors.

Runs are found by their checkpoints: every checkpoint directory under a workdir (the grid's
``<setup>[/seed_<s>]``; the single jobs' that came before it, ``teacher``/``student``[``/seed_<s>``]) is one run per
seed it holds, its model and loss read from the checkpoint's metadata. A run trained on teacher logits is
*distilled*; its teacher is the run of the same seed whose setup is the part before ``_to_`` of its own (the grid)
or ``teacher`` (the single jobs); its *independent* counterpart is its control in the grid (the ``mlp`` row for
``cnn_to_mlp``, or ``labels_to_mlp`` where the grid has it), else the same-seed run that is not distilled, trains the
same model and is not its teacher (the single jobs' ``independent``).

What is compared comes from the task (:class:`Probe`): the test inputs, their labels and, optionally, a grouping
(SVA: attractors). Three analyses:

* **converged** — the final models' representations (logits and the penultimate layer) pairwise: the paper's
  second-order cosine distance, linear CKA, prediction agreement; each distilled run's distance to its teacher
  vs its independent counterpart's distance to that teacher; a 2-D metric-MDS map.
* **paths** — every snapshot (``config.snapshots=True`` while training) of the chosen seeds in one distance
  matrix (logits, divided by its max as in the paper's code), metric MDS to 2-D: one line per run.
* **errors** — per pair of setups (instances paired by seed): test items both get wrong, one only, neither, and
  the Jaccard overlap of the error sets; whether a student's errors are more like its teacher's than like its
  independent counterpart's.
"""
import dataclasses
import os
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from absl import logging
from etils import epath
import flax.linen as nn
import jax
import ml_collections
import numpy as np

from kd_jax import checkpoints
from kd_jax import grid_report
from kd_jax import losses
from kd_jax import reports
from kd_jax.training import PENULTIMATE
from kd_jax import similarity
from kd_jax import phases

REPRESENTATIONS = ('logits', 'penultimate')
PAPER_BATCH = 500  # the paper's code measured similarity on batches of the test set and averaged them


@dataclasses.dataclass
class ProbeSet:
  """Inputs every model is run on, their labels and optionally a group per item (e.g. attractors)."""
  inputs: np.ndarray
  labels: np.ndarray
  groups: Optional[np.ndarray] = None

  def take(self, n: int) -> 'ProbeSet':
    return ProbeSet(self.inputs[:n], self.labels[:n], None if self.groups is None else self.groups[:n])


@dataclasses.dataclass
class Probe:
  """What a task gives the analyses: probe sets and how to build a model from a checkpoint's metadata."""
  sets: Dict[str, ProbeSet]
  create_model: Callable[[Dict[str, Any]], nn.Module]
  default_sets: Sequence[str]
  group_name: str = ''  # what ProbeSet.groups counts, for the reports


@dataclasses.dataclass
class Run:
  """One trained instance: a seed of a checkpoint directory."""
  workdir: str
  setup: str  # the directory under the workdir without seed_<s>: 'cnn_to_mlp', 'teacher', 'independent', …
  seed: int
  directory: str
  meta: Dict[str, Any]
  distilled: bool
  prefix: str = ''  # '<workdir name>:' when several workdirs are analysed together

  @property
  def name(self) -> str:
    """The setup as reports group it."""
    return self.prefix + self.setup

  @property
  def label(self) -> str:
    return f'{self.name}/seed_{self.seed}'

  @property
  def model(self) -> str:
    return self.meta['model']


# ----------------------------------------------------------------------------- finding runs

@dataclasses.dataclass(frozen=True)
class Reported:
  """What a finished job's report describes: its seeds and (reports written since Dec 6, 2026) the model of each
  checkpoint directory it evaluated (:func:`kd_jax.checkpoints.models_under`; None for older reports)."""
  seeds: Sequence[int]
  models: Optional[Dict[str, Dict[str, Any]]] = None


def find_runs(workdir: str, prefix: str = '', restored: Optional[Dict[str, str]] = None,
              reported: Optional[Reported] = None) -> List[Run]:
  """Every run (one per seed) of every checkpoint directory under ``workdir``, sorted by setup and seed; a run whose
  newest checkpoint is short of its last step is refused (its job's report does not describe it).

  ``restored``: setup → checkpoint path ('{seed}' allowed) of models the job restored instead of training them (an
  offline job's saved teachers, an ablation factor's instances of an earlier factor); they join the workdir's runs
  under that setup name, for the seeds the workdir has, so students pair with them as with trained ones.
  ``reported``: what the workdir's report describes; runs of other seeds (a re-run with more seeds, stopped before
  its report), and directories whose newest model is not the one the report evaluated (a retrain finished after
  it, its job stopped before writing the new report) are refused.
  """
  root = epath.Path(workdir)
  runs, unfinished, unreported_models = [], [], []
  for directory in sorted(checkpoints.checkpoint_dirs(root)):
    meta = checkpoints.read_meta(directory)
    if meta['step'] < meta.get('num_steps', meta['step']):
      unfinished.append(f'{directory} (step {meta["step"]} of {meta["num_steps"]})')
    relative = os.path.relpath(str(directory), str(root))
    if reported is not None and reported.models is not None:
      described = reported.models.get(relative)
      if described != checkpoints.model_record(meta):
        unreported_models.append(f'{directory} (step {meta["step"]}; the report ' +
                                 (f'evaluated step {described["step"]}, another model)' if described
                                  else 'has no model there)'))
    relative = relative.split(os.sep)
    if relative[-1].startswith('seed_'):
      relative = relative[:-1]
    loss = (meta.get('settings') or {}).get('loss', 'cross_entropy')
    for seed in meta.get('seeds', [0]):
      runs.append(Run(str(root), '/'.join(relative), seed, str(directory), meta, losses.loss_spec(loss).uses_teacher,
                      prefix))
  if unfinished:  # an interrupted run, or a retrain (overwrite) stopped midway: not what the reports describe
    raise ValueError(f'unfinished runs under {workdir}: {"; ".join(unfinished)}. The reports describe finished '
                     "runs only: finish them (run the job's command again) before analysing")
  if unreported_models:
    raise ValueError(f'{workdir} holds models its report does not describe: {"; ".join(unreported_models)} — '
                     'trained after the report was written (its job stopped before writing the new one), or left by '
                     "an earlier run of other setups: run the job's command again to evaluate them and rewrite the "
                     'report, or move them out of the workdir, before analysing')
  if not runs:
    raise FileNotFoundError(f'no kd_jax checkpoints under {workdir}: give the --workdir of a finished job or grid')
  unreported = sorted({run.seed for run in runs} - set(reported.seeds)) if reported is not None else []
  if unreported:
    raise ValueError(f'{workdir} holds runs of seeds {unreported}, which its report (seeds {sorted(reported.seeds)}) '
                     "does not describe — a re-run with more seeds stopped before writing it: finish that run (the "
                     "job's command again) before analysing")
  seeds = sorted({run.seed for run in runs})
  for setup, pattern in (restored or {}).items():
    if any(run.setup == setup for run in runs):
      continue
    directories = dict.fromkeys(pattern.format(seed=seed) for seed in seeds)  # one, for a vmapped stack
    runs += [dataclasses.replace(run, workdir=str(root), setup=setup, prefix=prefix)
             for directory in directories for run in find_runs(directory) if run.seed in seeds]
  return sorted(runs, key=lambda r: (r.setup, r.seed))


def teacher_of(run: Run, runs: Sequence[Run]) -> Optional[Run]:
  if not run.distilled:
    return None
  setup = run.setup.split('_to_')[0] if '_to_' in run.setup else 'teacher'
  return _find(runs, run, lambda r: r.setup == setup and not r.distilled)


def independent_of(run: Run, runs: Sequence[Run]) -> Optional[Run]:
  """A distilled run's control: in a grid the setup that is its control there (``labels_to_<student>`` where the
  grid has it, else its student model's row), else the same-seed run of its model that is neither distilled nor its
  teacher."""
  teacher = teacher_of(run, runs)
  if teacher is None:
    return None
  control = grid_report.control_of(run.setup, {r.setup for r in runs if r.workdir == run.workdir})
  return (_find(runs, run, lambda r: r.setup == control and not r.distilled and r is not teacher)
          or _find(runs, run, lambda r: (not r.distilled and r is not teacher and r.model == run.model
                                         and r.meta.get('model_kwargs') == run.meta.get('model_kwargs'))))


def _find(runs, run, predicate) -> Optional[Run]:
  found = [r for r in runs if r.workdir == run.workdir and r.seed == run.seed and predicate(r)]
  return found[0] if found else None


def snapshot_steps(run: Run) -> List[int]:
  return checkpoints.all_steps(phases.snapshot_dir(run.directory))


# ----------------------------------------------------------------------------- model outputs

class Outputs:
  """Logits and penultimate features of runs on one probe set, computed once per (run, step)."""

  def __init__(self, probe: Probe, probe_set: ProbeSet, batch_size: int = 1000, train_mode: bool = False):
    self.probe, self.set, self.batch_size, self.train_mode = probe, probe_set, batch_size, train_mode
    self._cache, self._apply = {}, {}

  def __call__(self, run: Run, step: Optional[int] = None) -> Dict[str, np.ndarray]:
    key = (run.directory, run.seed, step)
    if key not in self._cache:
      directory = run.directory if step is None else phases.snapshot_dir(run.directory)
      kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in run.meta.get('model_kwargs', {}).items()}
      model = self.probe.create_model({**run.meta, 'model_kwargs': kwargs})  # JSON lists: hashable tuples again
      cfg = ml_collections.ConfigDict({'model': run.model, 'model_kwargs': kwargs})
      variables, _ = phases.restore_variables(model, directory, cfg, self.set.inputs[:1], run.seed, step)
      self._cache[key] = self._run(model, variables)
    return self._cache[key]

  def _run(self, model, variables) -> Dict[str, np.ndarray]:
    if model not in self._apply:
      def apply(variables, inputs, rng):
        if self.train_mode:  # the paper code's analyses: dropout on, batch statistics (Keras training=True)
          logits, state = model.apply(variables, inputs, train=True, rngs={'dropout': rng},
                                      mutable=['intermediates', 'batch_stats'])
        else:
          logits, state = model.apply(variables, inputs, train=False, mutable=['intermediates'])
        return logits, state['intermediates'][PENULTIMATE][0]
      self._apply[model] = jax.jit(apply)
    parts = [self._apply[model](variables, self.set.inputs[i:i + self.batch_size], jax.random.PRNGKey(i))
             for i in range(0, len(self.set.inputs), self.batch_size)]
    return {'logits': np.concatenate([np.asarray(p[0], np.float64) for p in parts]),
            'penultimate': np.concatenate([np.asarray(p[1], np.float64) for p in parts])}


# ----------------------------------------------------------------------------- the analyses

def converged(runs: Sequence[Run], outputs: Outputs) -> Dict[str, Any]:
  """Pairwise distances, CKA and agreement between the final models; distilled runs vs their teachers."""
  final = [outputs(r) for r in runs]
  result = {'runs': [r.label for r in runs]}
  for rep in REPRESENTATIONS:
    reps = [f[rep] for f in final]
    result[rep] = {'second_order_cosine_distance': similarity.distance_matrix(reps, 'second_order_cosine',
                                                                              PAPER_BATCH).tolist(),
                   'linear_cka_distance': similarity.distance_matrix(reps, 'linear_cka').tolist()}
  result['agreement'] = [[similarity.agreement(a['logits'], b['logits']) for b in final] for a in final]
  index = {r.label: i for i, r in enumerate(runs)}
  rows = {}
  for run in runs:
    teacher, independent = teacher_of(run, runs), independent_of(run, runs)
    if teacher is None:
      continue
    row = rows.setdefault(run.name, {'teacher': teacher.name, 'independent': independent and independent.name,
                                      **{f'{rep}_{who}': [] for rep in REPRESENTATIONS
                                         for who in ('student_to_teacher', 'independent_to_teacher')}})
    for rep in REPRESENTATIONS:
      matrix = result[rep]['second_order_cosine_distance']
      row[f'{rep}_student_to_teacher'].append(matrix[index[run.label]][index[teacher.label]])
      if independent is not None:
        row[f'{rep}_independent_to_teacher'].append(matrix[index[independent.label]][index[teacher.label]])
  result['to_teacher'] = {setup: {k: (reports.summary_stats(v) if isinstance(v, list) and v else v)
                                  for k, v in row.items()} for setup, row in rows.items()}
  return result


def paths(runs: Sequence[Run], outputs: Outputs) -> Dict[str, Any]:
  """Every snapshot of ``runs`` in one distance matrix (logits; ÷ its max) and its 2-D metric-MDS embedding."""
  points = [(run, step, epoch) for run in runs for step, epoch in _snapshots(run)]
  if len(points) < 3:
    raise ValueError('training paths need snapshots: train with --config.snapshots=True (and for short runs '
                     '--config.snapshot_first_epoch=0.0625), then analyse that workdir')
  reps = [outputs(run, step)['logits'] for run, step, _ in points]
  distances = similarity.distance_matrix(reps, 'second_order_cosine', PAPER_BATCH)
  distances = distances / max(distances.max(), 1e-12)
  return {'points': [{'run': run.label, 'setup': run.name, 'distilled': run.distilled, 'step': step,
                      'epoch': epoch} for run, step, epoch in points],
          'distances': distances.tolist(), 'embedding': mds(distances).tolist()}


def _snapshots(run: Run) -> List[Tuple[int, float]]:
  steps = snapshot_steps(run)
  if not steps:
    return []
  directory = phases.snapshot_dir(run.directory)
  return [(step, float(checkpoints.read_meta(directory, step).get('epoch', 0.0))) for step in steps]


def mds(distances: np.ndarray) -> np.ndarray:
  """Metric MDS of a precomputed dissimilarity matrix to 2-D (scikit-learn; classical-MDS start, deterministic)."""
  from sklearn.manifold import MDS  # pylint: disable=g-import-not-at-top
  return MDS(n_components=2, metric_mds=True, metric='precomputed', init='classical_mds',
             random_state=0).fit_transform(distances)


def errors(runs: Sequence[Run], outputs: Outputs, group_name: str = '') -> Dict[str, Any]:
  """Error overlap between setups (paired by seed) and students' errors vs their teachers' and independents'."""
  labels, groups = outputs.set.labels, outputs.set.groups
  wrong = {r.label: outputs(r)['logits'].argmax(-1) != labels for r in runs}
  setups = sorted({r.name for r in runs})
  pairs = {}
  for i, a in enumerate(setups):
    for b in setups[i + 1:]:
      stats = []
      for run in (r for r in runs if r.name == a):
        other = _find(runs, run, lambda r, b=b: r.name == b)
        if other is not None:
          stats.append(_overlap(wrong[run.label], wrong[other.label]))
      if stats:
        pairs[f'{a} vs {b}'] = {k: reports.summary_stats([s[k] for s in stats]) for k in stats[0]}
  students = {}
  for run in runs:
    teacher, independent = teacher_of(run, runs), independent_of(run, runs)
    if teacher is None or independent is None:
      continue
    entry = students.setdefault(run.name, {'teacher': teacher.name, 'independent': independent.name,
                                            'accuracy_gain_over_independent': [],
                                            'jaccard_with_teacher': [], 'jaccard_with_independent': [],
                                            'teacher_errors_shared_by_student': [],
                                            'teacher_errors_shared_by_independent': []})
    entry['accuracy_gain_over_independent'].append(float(wrong[independent.label].mean() - wrong[run.label].mean()))
    entry['jaccard_with_teacher'].append(_overlap(wrong[run.label], wrong[teacher.label])['jaccard'])
    entry['jaccard_with_independent'].append(_overlap(wrong[run.label], wrong[independent.label])['jaccard'])
    # Jaccard is capped by the ratio of the error-set sizes; this asks instead: of the teacher's errors, how many?
    for who, other in (('student', run), ('independent', independent)):
      entry[f'teacher_errors_shared_by_{who}'].append(
          float((wrong[other.label] & wrong[teacher.label]).sum() / max(wrong[teacher.label].sum(), 1)))
    if groups is not None:
      for group in np.unique(groups):
        sel = groups == group
        for who, other in (('teacher', teacher), ('independent', independent)):
          entry.setdefault(f'jaccard_with_{who}_by_{group_name}', {}).setdefault(str(int(group)), []).append(
              _overlap(wrong[run.label][sel], wrong[other.label][sel])['jaccard'])
  for entry in students.values():
    for key, value in entry.items():
      if isinstance(value, list):
        entry[key] = reports.summary_stats(value)
      elif isinstance(value, dict):
        entry[key] = {g: reports.summary_stats(v) for g, v in value.items()}
  accuracy = {setup: reports.summary_stats([1.0 - float(wrong[r.label].mean()) for r in runs if r.name == setup])
              for setup in setups}
  return {'pairs': pairs, 'students': students, 'accuracy': accuracy, 'num_items': int(len(labels))}


def _overlap(wrong_a: np.ndarray, wrong_b: np.ndarray) -> Dict[str, float]:
  """Counts of items both / only one / neither get wrong; Jaccard of the error sets (1 when both are empty); the
  second's accuracy minus the first's (kept per pair, so that its spread over seeds is the paired one)."""
  both, only_a, only_b = (wrong_a & wrong_b).sum(), (wrong_a & ~wrong_b).sum(), (~wrong_a & wrong_b).sum()
  union = both + only_a + only_b
  return {'both_wrong': float(both), 'only_first_wrong': float(only_a), 'only_second_wrong': float(only_b),
          'neither_wrong': float(len(wrong_a) - union), 'jaccard': float(both / union) if union else 1.0,
          'second_minus_first_accuracy': float(only_a - only_b) / max(len(wrong_a), 1)}


# ----------------------------------------------------------------------------- everything, written

def analyse(runs: Sequence[Run], probe: Probe, out: str, config) -> Dict[str, Any]:
  """Runs the three analyses on each probe set and writes analysis.json, analysis.md and the figures to ``out``.

  ``config`` (configs/analyze.py): ``sets`` (comma-separated; '' = the probe's defaults), ``num_examples`` per set,
  ``path_seeds`` (the seeds whose snapshots trace training paths) and ``train_mode``.
  """
  sets = [s for s in config.sets.split(',') if s] or list(probe.default_sets)
  path_seeds, num_examples, train_mode = list(config.path_seeds), config.num_examples, config.train_mode
  unknown = [s for s in sets if s not in probe.sets]
  if unknown:
    raise ValueError(f'unknown probe set(s) {unknown} (--sets); this task has {sorted(probe.sets)}')
  epath.Path(out).mkdir(parents=True, exist_ok=True)
  report = {'runs': [{'label': r.label, 'workdir': r.workdir, 'directory': r.directory, 'model': r.model,
                      'distilled': r.distilled, 'teacher': getattr(teacher_of(r, runs), 'label', None),
                      'independent': getattr(independent_of(r, runs), 'label', None)} for r in runs],
            'mode': 'train (dropout on, batch statistics)' if train_mode else 'inference',
            'num_examples': num_examples, 'path_seeds': list(path_seeds), 'sets': {}, 'seconds': {}}
  path_runs = [r for r in runs if r.seed in path_seeds and snapshot_steps(r)]
  for name in sets:
    outputs = Outputs(probe, probe.sets[name].take(num_examples), train_mode=train_mode)
    result = {}
    for kind, fn in (('converged', lambda: converged(runs, outputs)),
                     ('errors', lambda: errors(runs, outputs, probe.group_name)),
                     ('paths', (lambda: paths(path_runs, outputs)) if path_runs else None)):
      if fn is None:
        continue
      t0 = time.perf_counter()
      result[kind] = fn()
      report['seconds'][f'{name}/{kind}'] = time.perf_counter() - t0
      logging.info('%s on %s: %.0f s', kind, name, report['seconds'][f'{name}/{kind}'])
    report['sets'][name] = result
    plot_converged(result['converged'], runs, os.path.join(out, f'converged_{name}.png'), name)
    if 'paths' in result:
      plot_paths(result['paths'], os.path.join(out, f'paths_{name}.png'), name)
      plot_heatmap(result['paths'], os.path.join(out, f'paths_{name}_matrix.png'), name)
  reports.write(out, 'analysis', report, markdown(report, probe.group_name), json_indent=1)
  return report


# ----------------------------------------------------------------------------- report and figures

def markdown(report: Dict[str, Any], group_name: str = '') -> str:
  lines = ['# kd_jax analyses', '',
           f'{len(report["runs"])} runs; models in {report["mode"]} mode; the first {report["num_examples"]} items '
           f'of each probe set (all of a smaller one). Distances: the paper code\'s second-order cosine (1 − similarity; batches of '
           f'{PAPER_BATCH} averaged). Cells: mean ± sample std over seeds.', '']
  for name, result in report['sets'].items():
    lines += [f'## {name}', '', '### Distance to the teacher (converged solutions)', '',
              '| student setup | teacher | student → its teacher (logits) | independent → that teacher (logits) | '
              'student → teacher (penultimate) | independent → teacher (penultimate) |', '|---|---|---|---|---|---|']
    for setup, row in result['converged']['to_teacher'].items():
      cells = [reports.mean_std_cell(row.get(f'{rep}_{who}') or None, 1.0, 4) for rep in REPRESENTATIONS
               for who in ('student_to_teacher', 'independent_to_teacher')]
      lines.append(f'| {setup} | {row["teacher"]} | ' + ' | '.join(cells) + ' |')
    errors_ = result['errors']
    lines += ['', f'### Error overlap ({errors_["num_items"]} items)', '',
              'Accuracy on them: ' + ', '.join(f'{setup} {reports.mean_std_cell(stats, 100.0, 1)} %'
                                             for setup, stats in errors_['accuracy'].items()) + '.', '',
              '| setups | both wrong | first only | second only | Jaccard of the error sets | second − first, accuracy '
              '(points, paired) |', '|---|---|---|---|---|---|']
    for pair, stats in errors_['pairs'].items():
      lines.append(f'| {pair} | ' + ' | '.join(reports.mean_std_cell(stats[k], 1.0, 1) for k in
                                               ('both_wrong', 'only_first_wrong', 'only_second_wrong')) +
                   f' | {reports.mean_std_cell(stats["jaccard"], 1.0, 3)} | '
                   f'{reports.mean_std_cell(stats["second_minus_first_accuracy"], 100.0, 1)} |')
    if errors_['students']:
      lines += ['', '| student setup | Jaccard with its teacher\'s errors | with its independent counterpart\'s | '
                'teacher\'s errors the student shares (%) | the independent shares (%) |', '|---|---|---|---|---|']
      for setup, entry in errors_['students'].items():
        lines.append(f'| {setup} (teacher {entry["teacher"]}, independent {entry["independent"]}) | '
                     f'{reports.mean_std_cell(entry["jaccard_with_teacher"], 1.0, 3)} | '
                     f'{reports.mean_std_cell(entry["jaccard_with_independent"], 1.0, 3)} | '
                     f'{reports.mean_std_cell(entry["teacher_errors_shared_by_student"], 100.0, 1)} | '
                     f'{reports.mean_std_cell(entry["teacher_errors_shared_by_independent"], 100.0, 1)} |')
        by_group = entry.get(f'jaccard_with_teacher_by_{group_name}')
        for group in (by_group or {}):
          lines.append(f'| … {group_name} = {group} | {reports.mean_std_cell(by_group[group], 1.0, 3)} | '
                       f'{reports.mean_std_cell(entry[f"jaccard_with_independent_by_{group_name}"][group], 1.0, 3)}'
                       ' | | |')
    figures = [f'![converged solutions](converged_{name}.png)']
    if 'paths' in result:
      figures += [f'![training paths](paths_{name}.png)', f'![snapshot distances](paths_{name}_matrix.png)']
    else:
      figures += [f'No training paths: no run of seeds {report["path_seeds"]} has snapshots (train with '
                  '--config.snapshots=True).']
    lines += [''] + figures + ['']
  lines += ['Time per analysis: ' + ', '.join(f'{k} {v:.0f} s' for k, v in report['seconds'].items()) + '.', '']
  return '\n'.join(lines)


def write_factors_report(factor_reports: Dict[str, Dict[str, Any]], gains: Dict[str, Dict[str, Any]],
                         out: str) -> Dict[str, Any]:
  """factors.json/.md/.png: per probe set, one row per factor and KD setup — its and its independent's accuracy and
  ECE, its gain over the factor's own independent student and over the first factor's (``gains``: an ablation
  report's per-factor entries), its distance to the teacher against the independent's, and the teacher's errors it
  shares."""
  summary = {}
  for factor, report in factor_reports.items():
    factor_gains = gains[factor]
    for name, result in report['sets'].items():
      for setup, distance in result['converged']['to_teacher'].items():
        roles = {'student': setup, 'independent': grid_report.control_of(setup, factor_gains['setups']),
                 'teacher': distance['teacher']}
        if name in factor_gains['setups'][setup]['summary']:  # a test set of the grids: their full-set numbers
          row = {role: (factor_gains['setups'].get(s) or {}).get('summary', {}).get(name)  # None: a setup not run
                 for role, s in roles.items()}
          row.update({k: factor_gains[k][setup][name]
                      for k in ('gain_over_independent', 'gain_over_first_factor_independent')})
        else:  # a probe set the grids did not evaluate (views_*, held-out corruptions): the analysed items' numbers
          accuracy, student = result['errors']['accuracy'], result['errors']['students'].get(setup) or {}
          row = {role: {'accuracy': accuracy[s]} if s in accuracy else None for role, s in roles.items()}
          row.update(gain_over_independent=student.get('accuracy_gain_over_independent'),
                     gain_over_first_factor_independent=None)
        summary.setdefault(name, {}).setdefault(factor, {})[setup] = {
            **row, 'to_teacher': distance, 'errors': result['errors']['students'].get(setup)}
  first = next(iter(factor_reports), '')
  lines = ['# kd_jax analyses: every factor of an ablation', '',
           f'Each factor\'s grid analysed on its own (its directory here). Gains: accuracy points, paired by seed, over '
           f'the factor\'s own independent student and over the first factor\'s ({first}). Distances: second-order '
           'cosine on the logits (lower: nearer the teacher). Cells: mean ± sample std over seeds.', '']
  for name, rows in summary.items():
    lines += [f'## {name}', '', '| factor | student setup | student acc (%) / ECE | independent acc (%) / ECE | '
              'teacher acc (%) / ECE | gain over its independent | gain over the first factor\'s independent | '
              'student → teacher | independent → teacher | teacher\'s errors the student shares (%) | the independent '
              'shares (%) |', '|---' * 11 + '|']
    for factor, setups in rows.items():
      for setup, row in setups.items():
        errors_ = row['errors'] or {}
        lines.append(f'| {factor} | {setup} | ' + ' | '.join([
            *(_accuracy_cell(row[role]) for role in ('student', 'independent', 'teacher')),
            reports.mean_std_cell(row['gain_over_independent'], 100.0, 1),
            reports.mean_std_cell(row['gain_over_first_factor_independent'], 100.0, 1),
            reports.mean_std_cell(row['to_teacher'].get('logits_student_to_teacher') or None, 1.0, 3),
            reports.mean_std_cell(row['to_teacher'].get('logits_independent_to_teacher') or None, 1.0, 3),
            reports.mean_std_cell(errors_.get('teacher_errors_shared_by_student'), 100.0, 1),
            reports.mean_std_cell(errors_.get('teacher_errors_shared_by_independent'), 100.0, 1)]) + ' |')
    lines.append('')
  with_gains = {name: rows for name, rows in summary.items()
                if any(row['gain_over_first_factor_independent']
                       for setups in rows.values() for row in setups.values())}
  if len(with_gains) < len(summary):
    lines.append('Probe sets the grids did not evaluate: accuracy on the analysed items (config.num_examples; all of '
                 'them with --config.num_examples=10000), its gain over the independent paired by seed; no ECE, no '
                 'gain over the first factor\'s independent.\n')
  if with_gains:
    lines.append('![gain against nearness to the teacher](factors.png)')
  reports.write(out, 'factors', summary, '\n'.join(lines))
  if with_gains:
    plot_factors(with_gains, os.path.join(out, 'factors.png'), first)
  return summary


def _accuracy_cell(stats) -> str:
  """'acc ± std / ECE' in a factors row; without ECE for a probe set the grids did not evaluate; '–' for none."""
  if not stats:
    return '–'
  ece = f' / {stats["ece"]["mean"]:.3f}' if 'ece' in stats else ''
  return reports.mean_std_cell(stats['accuracy'], 100.0, 1) + ece


def plot_factors(summary, path: str, first: str):
  """Per probe set, each factor's students: gain over the first factor's independent against their logits' distance
  to the teacher — does a student nearer its teacher gain more?"""
  plt = reports.pyplot()
  fig, axes = plt.subplots(1, len(summary), figsize=(6.5 * len(summary), 5.5), squeeze=False)
  for ax, (name, rows) in zip(axes[0], summary.items()):
    for factor, setups in rows.items():
      for setup, row in setups.items():
        distance, gain = row['to_teacher']['logits_student_to_teacher'], row['gain_over_first_factor_independent']
        ax.errorbar(distance['mean'], 100 * gain['mean'], xerr=distance['std'], yerr=100 * gain['std'], fmt='o',
                    capsize=3)
        ax.annotate(factor if len(setups) == 1 else f'{factor} {setup}', (distance['mean'], 100 * gain['mean']),
                    fontsize=7, xytext=(4, 4), textcoords='offset points')
    independent = rows[first][next(iter(rows[first]))]['to_teacher']['logits_independent_to_teacher']
    ax.errorbar(independent['mean'], 0.0, xerr=independent['std'], fmt='s', color='grey', capsize=3,
                label=f'{first}\'s independent (gain 0 by definition)')
    ax.axhline(0.0, color='grey', linewidth=0.5)
    ax.set(title=f'{name}: students of each factor', xlabel='student → teacher (second-order cosine, logits)',
           ylabel=f'gain over {first}\'s independent (points)')
    ax.legend(fontsize=8)
  fig.tight_layout()
  reports.save_figure(fig, path)


def _colour(setup: str, setups: Sequence[str]):
  plt = reports.pyplot()
  return plt.get_cmap('tab10')(sorted(setups).index(setup) % 10)


def plot_converged(result, runs: Sequence[Run], path: str, set_name: str):
  plt = reports.pyplot()
  setups = sorted({r.name for r in runs})
  fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
  for ax, rep in zip(axes, REPRESENTATIONS):
    xy = mds(np.asarray(result[rep]['second_order_cosine_distance']))
    for setup in setups:
      idx = [i for i, r in enumerate(runs) if r.name == setup]
      distilled = runs[idx[0]].distilled
      ax.scatter(xy[idx, 0], xy[idx, 1], color=_colour(setup, setups), marker='^' if distilled else 'o', s=50,
                 label=setup)
    ax.set_title(f'{rep}: final models on {set_name} (MDS)')
    ax.set_xticks([])
    ax.set_yticks([])
  axes[0].legend(fontsize=8)
  fig.tight_layout()
  reports.save_figure(fig, path)


def plot_paths(result, path: str, set_name: str):
  plt = reports.pyplot()
  points, xy = result['points'], np.asarray(result['embedding'])
  setups = sorted({p['setup'] for p in points})
  fig, ax = plt.subplots(figsize=(7, 6))
  seen = set()
  for run in dict.fromkeys(p['run'] for p in points):
    idx = [i for i, p in enumerate(points) if p['run'] == run]
    setup, distilled = points[idx[0]]['setup'], points[idx[0]]['distilled']
    ax.plot(xy[idx, 0], xy[idx, 1], '-' if distilled else '--', color=_colour(setup, setups), alpha=0.8,
            label=None if setup in seen else setup + (' (distilled)' if distilled else ''))
    seen.add(setup)
    ax.scatter(xy[idx, 0], xy[idx, 1], color=_colour(setup, setups), s=[12 + 6 * k for k in range(len(idx))],
               marker='^' if distilled else 'o')
    ax.annotate('end', xy[idx[-1]], fontsize=6)
  ax.set_title(f'Training paths on {set_name} (logits, MDS; marker size grows with the epoch)')
  ax.set_xticks([])
  ax.set_yticks([])
  ax.legend(fontsize=8)
  fig.tight_layout()
  reports.save_figure(fig, path)


def plot_heatmap(result, path: str, set_name: str):
  plt = reports.pyplot()
  labels = [f'{p["run"]} e{p["epoch"]:g}' for p in result['points']]
  fig, ax = plt.subplots(figsize=(8, 7))
  image = ax.imshow(np.asarray(result['distances']), cmap='viridis')
  ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=4)
  ax.set_yticks(range(len(labels)), labels, fontsize=4)
  fig.colorbar(image, ax=ax, label='distance ÷ max')
  ax.set_title(f'Snapshot distances on {set_name}')
  fig.tight_layout()
  reports.save_figure(fig, path)
