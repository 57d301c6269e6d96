"""The seed grid's reports (:mod:`kd_jax.seed_grid`): its table, plots, ablation and student-budget sweeps, for any
task. A report names its test sets (``test_sets``: name -> title, in order), the two it headlines in sweeps and
ablations (``headline_sets``) and, where the paper gives one, the gain it reports (``paper_gain``)."""
import os
from typing import Any, Dict, List

import numpy as np

from kd_jax import paths
from kd_jax import reports
from kd_jax import sharding

# What a grid report says of its task, copied into the sweeps and ablations made of its grids.
TASK_FIELDS = ('task_title', 'test_sets', 'headline_sets', 'paper_gain')
# A grid keeps each row's reliability bins (for its diagrams) up to this many ECE bins; more, e.g. the authors'
# million-bin ECE, would make grid.json hundreds of MB.
MAX_RELIABILITY_BINS = 10_000


# '<LABELS>_to_<student>': the student model with the student role's settings and training split, on gold labels
# alone. Where a grid has it, it is the control of every <teacher>_to_<student> setup (else the student model's own
# row): e.g. with a transfer set, which the students see and the independent rows do not.
LABELS = 'labels'


def is_kd(setup: str) -> bool:
  """Whether ``setup`` is <teacher>_to_<student> with a teacher (not the gold labels)."""
  teacher, to, _ = setup.partition('_to_')
  return bool(to) and teacher != LABELS


def control_of(setup: str, setups) -> str:
  """The control of KD setup ``setup`` among ``setups``: ``labels_to_<student>`` if there, else ``<student>``."""
  student = setup.partition('_to_')[2]
  labels = f'{LABELS}_to_{student}'
  return labels if labels in setups else student


def summarise(instances: List[Dict[str, Any]]) -> Dict[str, Dict[str, Dict[str, float]]]:
  """Mean, sample standard deviation and n over instances, per test set and metric."""
  return {test_set: {metric: reports.summary_stats([inst[test_set][metric] for inst in instances])
                     for metric in ('accuracy', 'ece', 'teacher_agreement')
                     if all(metric in inst[test_set] for inst in instances)}
          for test_set in instances[0]}


def format_row(instances, titles: Dict[str, str]) -> str:
  summary = summarise(instances)
  return ', '.join(f'{title} {100 * summary[t]["accuracy"]["mean"]:.2f}%' for t, title in titles.items())


def grid_table(report) -> str:
  titles = report['test_sets']
  lines = ['| setup | n | ' + ' | '.join(f'{title} acc (%) | {title} ECE' for title in titles.values())
           + ' |', '|---|---' + '|---' * (2 * len(titles)) + '|']
  for setup in report['setups'].values():
    s = setup['summary']
    cells = ' | '.join(f'{reports.mean_std_cell(s[t]["accuracy"])} | {reports.mean_std_cell(s[t]["ece"], 1.0, 4)}'
                       for t in titles)
    lines.append(f'| {setup["title"]} | {len(setup["instances"])} | {cells} |')
  return '\n'.join(lines)


def write_grid_report(report, workdir: str, task_section=lambda report, workdir: ''):
  """grid.md/.json and its figures; ``task_section(report, workdir)``: the task's own markdown (and figures)."""
  if not sharding.is_primary():
    return
  plot_accuracy(report, os.path.join(workdir, 'accuracy.png'))
  has_bins = all('reliability' in row for setup in report['setups'].values() for instance in setup['instances']
                 for row in instance.values())
  if has_bins:
    plot_reliability(report, os.path.join(workdir, 'reliability.png'))
  elif (stale := paths.absolute(workdir) / 'reliability.png').exists():  # an earlier evaluation's
    stale.unlink()
  warning = report['data_warning'] + reports.targets_warning(report['config'])
  logits = 'cached once per teacher instance' if report['cache_teacher_logits'] else 'computed in the step'
  seconds = ', '.join(f'{s["title"]} {s["seconds"]:.0f} s' for s in report['setups'].values() if s['seconds'])
  text = (f'# kd_jax {report["task_title"]} grid\n\n{warning}Data: {report["data_source"]}\n\n'
          f'{report["mode"]} KD; seeds {report["seeds"]} (n = {len(report["seeds"])} per setup, '
          f'{"vmapped" if report["vmapped"] else "run one after another"}); '
          f'teacher logits {logits if report["mode"] == "offline" else "from the co-trained teacher"}; '
          f'{report["num_train"]} train examples'
          + (f' ({report["num_student_train"]} for the student role: KD setups and {LABELS}_to_<student>)'
             if report.get('num_student_train', report['num_train']) != report['num_train'] else '')
          + '; test examples: '
          + ', '.join(f'{report["test_sets"][t]} {n}' for t, n in report['num_test'].items()) + '. '
          f'Cells: mean ± sample std (ddof = 1) over instances. Checkpoint rule: {report["checkpoint_rule"]}. '
          f'ECE: {report["config"]["eval"]["ece_bins"]} equal-width (l, r] bins (Guo et al.).\n\n'
          + ''.join(shared_teacher_line(report, name) for name in report.get('shared_teachers', ()))
          + ''.join(ensemble_line(report, name) for name in report.get('teacher_ensembles', {}))
          + ''.join(cross_fit_line(report, setup) for setup in report.get('cross_fit', {}))
          + f'{grid_table(report)}\n\n{grid_gain_table(report)}{grid_agreement_table(report)}'
          + task_section(report, workdir) +
          '![accuracy](accuracy.png)\n\n'
          + ('![reliability](reliability.png)\n\n' if has_bins else
             f'(No reliability diagrams: more than {MAX_RELIABILITY_BINS} ECE bins are not kept.)\n\n')
          + f'{reports.wall_time(report["total_seconds"])} on {report["num_devices"]} × {report["device"]} '
          f'({seconds}){reports.precision_note(report["config"])}.\n')
  reports.write(workdir, 'grid', report, text, json_indent=1)


def ensemble_line(report, name: str) -> str:
  """The report's line saying that every seed's students of ``name`` distilled from one ensemble, and its level."""
  ensemble = report['teacher_ensembles'][name]
  accuracy = ', '.join(f'{title} {100 * ensemble["metrics"][t]["accuracy"]:.2f} %'
                       for t, title in report['test_sets'].items())
  title = report['model_titles'][name]
  return (f'**Teacher ensemble**: every student of a {title} teacher distilled from the ensemble of all '
          f'{ensemble["members"]} seeds\' {title} teachers (averaged {ensemble["combine"]}), not from its own seed\'s; '
          f'the ensemble itself: {accuracy}.\n\n')


def cross_fit_line(report, setup: str) -> str:
  cross_fit = report['cross_fit'][setup]
  accuracy = ' / '.join(f'{100 * a:.2f}' for a in cross_fit['target_accuracy'])
  return (f'{report["setups"][setup]["title"]} learns cross-fitted targets: per seed, {cross_fit["folds"]} fold '
          'teachers, each trained on the other folds of the training split, label the fold they did not see (their '
          f'argmax is the gold label on {accuracy} % of the training inputs, per seed); its teacher\'s row, and its '
          'agreement with it, are the teacher of the whole split.\n\n')


def grid_agreement_table(report) -> str:
  """Per KD setup: how often its students predict their teacher's class, mean ± std, and how often its control
  (:func:`control_of`) does ('' if no setup has it)."""
  titles, setups = report['test_sets'], report['setups']
  rows = [f'| {setup["title"]} | ' + ' | '.join(reports.mean_std_cell(setup['summary'][t]['teacher_agreement'])
                                                for t in titles) + ' |'
          for setup in setups.values() if 'teacher_agreement' in next(iter(setup['summary'].values()))]
  rows += [f'| {setups[control_of(name, setups)]["title"]} (the control) with {setups[name]["title"]}\'s teacher | '
           + ' | '.join(reports.mean_std_cell(agreement[t]['teacher_agreement']) for t in titles) + ' |'
           for name, agreement in report.get('control_agreement', {}).items()]
  if not rows:
    return ''
  return ('Agreement with the teacher\'s predictions (%): the fraction of test inputs on which a student predicts the '
          'class its own teacher predicts; a control\'s row, how often its model predicts that class from gold labels '
          'alone.\n\n| setup | ' + ' | '.join(titles.values())
          + ' |\n|---' + '|---' * len(titles) + '|\n' + '\n'.join(rows) + '\n\n')


def signed_cell(stats) -> str:
  """A gain in points: its sign always shown ('+1.50 ± 0.40', '−2.00'; '+0.00' for a gain that rounds to 0)."""
  cell = reports.mean_std_cell(stats)
  return cell.replace('-', '−') if cell.startswith('-') and cell.lstrip('-')[:4] != '0.00' else '+' + cell.lstrip('-')


def grid_gain_table(report) -> str:
  """Per KD setup whose student model has its own (independent) row: the accuracy it gains over that row, in
  points, paired by seed — what the teacher passed on ('' if no setup has such a row)."""
  titles, setups = report['test_sets'], report['setups']
  gains = gains_over_independent(report, report)
  if not gains:
    return ''
  def against(name):  # the independent row, and whether it is one shared model rather than one per seed
    control = setups[control_of(name, setups)]
    shared = len(control['instances']) == 1 < len(setups[name]['instances'])
    return control['title'] + (' (one shared model, not paired)' if shared else '')

  rows = [f'| {setups[name]["title"]} − {against(name)} | ' + ' | '.join(signed_cell(gain[t]) for t in titles) + ' |'
          for name, gain in gains.items()]
  labels = any(control_of(name, setups) != name.partition('_to_')[2] for name in gains)
  return ('Gain over the independent student (accuracy points, paired by seed): each KD setup minus the row of its '
          'student model trained on gold labels alone — the control'
          + (f' ({LABELS}_to_<student>: the student model trained as the students are, on their training split, from '
             'gold labels)' if labels else '') + '.'
          + (' One seed: --config.num_seeds=4 gives mean ± std.' if len(report['seeds']) == 1 else '')
          + '\n\n| setup | ' + ' | '.join(titles.values())
          + ' |\n|---' + '|---' * len(titles) + '|\n' + '\n'.join(rows) + '\n\n')


def shared_teacher_line(report, name: str) -> str:
  """The report's warning that every seed's students of ``name`` distilled from one saved teacher — whether or not
  that teacher is a row of the grid."""
  checkpoint = report['config']['models'][name]['checkpoint']
  title = report['setups'][name]['title'] if name in report['setups'] else report['model_titles'][name]
  row = 'its row is that one model, and ' if name in report['setups'] else ''
  return (f'**One teacher for all seeds**: {title} (config.kd.shared_teacher=True, {checkpoint}); {row}its students\' '
          'spread is over their own seeds only.\n\n')


def plot_accuracy(report, path: str):
  plt = reports.pyplot()
  setups, titles = list(report['setups'].values()), report['test_sets']
  x = np.arange(len(titles))
  width = 0.8 / len(setups)
  fig, ax = plt.subplots(figsize=(9, 4.5))
  for i, setup in enumerate(setups):
    s = setup['summary']
    ax.bar(x + (i - (len(setups) - 1) / 2) * width, [100 * s[t]['accuracy']['mean'] for t in titles],
           width, yerr=[100 * s[t]['accuracy']['std'] for t in titles], capsize=3, label=setup['title'])
  ax.set_xticks(x, list(titles.values()))
  ax.set_ylabel('accuracy (%)')
  ax.set_ylim(0, 100)
  ax.set_title(f'Accuracy, mean ± std over {len(report["seeds"])} seeds ({report["mode"]} KD)')
  ax.legend(ncol=len(setups), fontsize=8, loc='upper center', bbox_to_anchor=(0.5, -0.08))
  fig.tight_layout()
  reports.save_figure(fig, path, dpi=120)


def plot_reliability(report, path: str):
  """Reliability diagrams of the first KD setup and its teacher's and student's independent rows (those present;
  e.g. the CNN, the MLP and CNN→MLP), bins pooled over instances."""
  plt = reports.pyplot()
  setups, titles = report['setups'], report['test_sets']
  pair = next((s for s in setups if is_kd(s)), '')
  shown = [s for s in (*pair.split('_to_'), pair) if s in setups] or list(setups)[:3]
  fig, axes = plt.subplots(len(titles), len(shown), figsize=(3.2 * len(shown), 3 * len(titles)), squeeze=False)
  for col, setup in enumerate(shown):
    for row, test_set in enumerate(titles):
      bins = [inst[test_set]['reliability'] for inst in report['setups'][setup]['instances']]
      count = np.sum([b['count'] for b in bins], axis=0)
      safe = np.maximum(count, 1)
      accuracy = np.sum([np.array(b['accuracy']) * b['count'] for b in bins], axis=0) / safe
      confidence = np.sum([np.array(b['confidence']) * b['count'] for b in bins], axis=0) / safe
      edges = np.linspace(0, 1, len(count) + 1)
      ax = axes[row, col]
      filled = count > 0
      ax.bar(edges[:-1], np.where(filled, accuracy, 0), width=np.diff(edges), align='edge',
             edgecolor='black', linewidth=0.5, label='accuracy')
      ax.bar(edges[:-1], np.where(filled, np.abs(confidence - accuracy), 0), bottom=np.minimum(accuracy, confidence),
             width=np.diff(edges), align='edge', color='red', alpha=0.3, label='gap to mean confidence')
      ax.plot([0, 1], [0, 1], 'k--', linewidth=0.8)
      ece = report['setups'][setup]['summary'][test_set]['ece']['mean']
      ax.set_title(f'{report["setups"][setup]["title"]} · {titles[test_set]}\nECE {ece:.3f}', fontsize=9)
      ax.set_xlim(0, 1)
      ax.set_ylim(0, 1)
      if row == len(titles) - 1:
        ax.set_xlabel('confidence')
      if col == 0:
        ax.set_ylabel('accuracy')
  axes[0, 0].legend(fontsize=7, loc='upper left')
  fig.tight_layout()
  reports.save_figure(fig, path, dpi=110)


# ----------------------------------------------------------------------------- students at several budgets

def gains_over_independent(grid: Dict[str, Any], reference: Dict[str, Any]) -> Dict[str, Any]:
  """Each KD setup of ``grid``: its accuracy minus that of its control (:func:`control_of`: the student model's own
  row, or ``labels_to_<student>``) in the grid ``reference`` (``grid`` itself, or e.g. an ablation's first factor),
  paired by seed."""
  gains = {}
  for name, setup in grid['setups'].items():
    control = control_of(name, reference['setups'])
    if is_kd(name) and control in reference['setups']:
      independent = reference['setups'][control]['instances']
      if len(independent) == 1:  # one shared model (config.kd.shared_teacher): every seed against it
        independent = independent * len(setup['instances'])
      gains[name] = {t: reports.summary_stats([d[t]['accuracy'] - i[t]['accuracy']
                                               for d, i in zip(setup['instances'], independent, strict=True)])
                    for t in grid['test_sets']}
  return gains


def student_epochs_summary(grids: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
  """Per number of student epochs (keys of ``grids``, each a grid report): every setup's summary and each KD
  setup's gain over its control (:func:`control_of`), paired by seed."""
  rows = {}
  for epochs, grid in grids.items():
    setups = grid['setups']
    rows[epochs] = {'setups': {name: {'title': s['title'], 'summary': s['summary']} for name, s in setups.items()},
                    'gain_over_independent': gains_over_independent(grid, grid), 'seconds': grid['total_seconds']}
  last = next(reversed(grids.values()))
  return {'student_epochs': rows, **{key: last[key] for key in TASK_FIELDS}, 'seeds': last['seeds'],
          'data_source': last['data_source'], 'data_warning': last['data_warning'], 'device': last['device'],
          'num_devices': last['num_devices'], 'config': last['config']}


def paper_sentence(report) -> str:
  """' The paper: <its gain>.' where the task's paper reports one (``paper_gain``), else ''."""
  return f' The paper: {report["paper_gain"]["sentence"]}.' if report['paper_gain'] else ''


def mark_paper_gain(report, ax, test_set: str, vertical: bool):
  """A dashed line at the paper's gain on a plot of gains on ``test_set``, where the paper reports one there."""
  gain = report['paper_gain']
  if gain and gain['test_set'] == test_set:
    (ax.axvline if vertical else ax.axhline)(gain['points'], color='black', linestyle='--', linewidth=1,
                                             label=f'paper: {gain["label"]}')


def write_student_epochs_report(sweep: Dict[str, Any], workdir: str):
  if not sharding.is_primary():
    return
  plot_student_epochs(sweep, os.path.join(workdir, 'student_epochs.png'))
  rows = sweep['student_epochs']
  first = next(iter(rows.values()))
  titles = {name: s['title'] for name, s in first['setups'].items()}
  gain_names = list(first['gain_over_independent'])
  tables = []
  for test_set in sweep['headline_sets'][::-1]:
    header = ['student epochs'] + [f'{title} acc (%) / ECE' for title in titles.values()]
    header += [f'{titles[n]} − {titles[control_of(n, titles)]} (points)' for n in gain_names]
    lines = [f'**{sweep["test_sets"][test_set]}**\n', '| ' + ' | '.join(header) + ' |', '|---' * len(header) + '|']
    for epochs, row in rows.items():
      cells = [f'{reports.mean_std_cell(row["setups"][n]["summary"][test_set]["accuracy"], digits=1)} / '
               f'{row["setups"][n]["summary"][test_set]["ece"]["mean"]:.3f}' for n in titles]
      cells += [reports.mean_std_cell(row['gain_over_independent'][n][test_set], digits=1) for n in gain_names]
      lines.append(f'| {epochs} | ' + ' | '.join(cells) + ' |')
    tables.append('\n'.join(lines))
  seconds = ', '.join(f'{e} epochs: {row["seconds"]:.0f} s' for e, row in rows.items())
  text = (f'# kd_jax {sweep["task_title"]}: students at several budgets\n\n{sweep["data_warning"]}'
          f'{reports.targets_warning(sweep["config"])}'
          f'Data: {sweep["data_source"]}\n\nSeeds {sweep["seeds"]} (n = {len(sweep["seeds"])}); cells: mean ± sample '
          'std over seeds (accuracy) / mean ECE (15 equal-width (l, r] bins); gains are paired by seed. Students and '
          f'their independent counterparts train the same epochs; teacher-only models were trained once.'
          f'{paper_sentence(sweep)}\n\n'
          + '\n\n'.join(tables) + f'\n\n![student epochs](student_epochs.png)\n\n{reports.wall_time(seconds)} on '
          f'{sweep["num_devices"]} × {sweep["device"]}{reports.precision_note(sweep["config"])}.\n')
  reports.write(workdir, 'student_epochs', sweep, text, json_indent=1)


def plot_ablation(ablation: Dict[str, Any], path: str):
  """Per factor, each KD setup's paired gain (mean ± std over seeds) on the two headline test sets: over the factor's
  own independent student and over the first factor's; the paper's gain marked."""
  plt = reports.pyplot()
  rows = ablation['student_epochs']
  factors = list(rows)
  first = next(iter(rows.values()))
  fig, axes = plt.subplots(1, 2, figsize=(14, 0.45 * len(factors) * len(first['gain_over_independent']) + 1.8),
                           sharey=True)
  y = np.arange(len(factors))
  for ax, test_set in zip(axes, ablation['headline_sets']):
    title = lambda name: first['setups'][name]['title']
    bars = [(name, gains, f'{title(name)} − {whose} {title(control_of(name, first["setups"]))}')
            for name in first['gain_over_independent']
            for gains, whose in (('gain_over_independent', "the factor's"),
                                 ('gain_over_first_factor_independent', f"{factors[0]}'s"))]
    height = 0.8 / len(bars)
    for i, (name, gains, label) in enumerate(bars):
      stats = [rows[f][gains][name][test_set] for f in factors]
      ax.barh(y + i * height, [100 * s['mean'] for s in stats], height, xerr=[100 * s['std'] for s in stats],
              capsize=2, label=label)
    mark_paper_gain(ablation, ax, test_set, vertical=True)
    ax.axvline(0, color='grey', linewidth=0.5)
    ax.set_title(f'{ablation["test_sets"][test_set]}: gain (accuracy points, mean ± std over seeds)')
  axes[0].set_yticks(y + 0.4 - 0.4 / len(bars), factors)
  axes[0].invert_yaxis()
  axes[0].legend(fontsize=8)
  fig.tight_layout()
  reports.save_figure(fig, path, dpi=110)


def write_ablation_report(ablation: Dict[str, Any], workdir: str):
  """One row per factor of :func:`kd_jax.seed_grid.run_factors`: what it changes, each setup's accuracy on the
  first headline test set, and each KD setup's gain over its independent student on both, paired by seed."""
  if not sharding.is_primary():
    return
  plot_ablation(ablation, os.path.join(workdir, 'ablation.png'))
  rows = ablation['student_epochs']
  first = next(iter(rows.values()))
  titles = {name: s['title'] for name, s in first['setups'].items()}
  gain_names = list(first['gain_over_independent'])
  first_factor = next(iter(rows))
  headline, set_titles = ablation['headline_sets'], ablation['test_sets']
  header = ['factor', 'changes'] + [f'{title} {set_titles[headline[0]]} acc (%)' for title in titles.values()]
  for test_set in headline:
    header += [f'{titles[n]} − {titles[control_of(n, titles)]} on {set_titles[test_set]} (points)'
               for n in gain_names]
  # Against one baseline for every factor: the first factor's independent student (e.g. the no-KD MLP, when a
  # factor's own independent row is a control that changed with it).
  header += [f'{titles[n]} − {first_factor}\'s {titles[control_of(n, titles)]} on {set_titles[t]} (points)'
             for t in headline for n in gain_names]
  lines = ['| ' + ' | '.join(header) + ' |', '|---' * len(header) + '|']
  for factor, row in rows.items():
    changes = '; '.join(f'{k} = {v}' for k, v in _flat(ablation['factors'][factor]).items()) or '(none)'
    cells = [reports.mean_std_cell(row['setups'][n]['summary'][headline[0]]['accuracy'], digits=1)
             for n in titles]
    cells += [reports.mean_std_cell(row[gains][n][t], digits=1) for gains in ('gain_over_independent',
                                                                           'gain_over_first_factor_independent')
              for t in headline for n in gain_names]
    lines.append(f'| {factor} | {changes} | ' + ' | '.join(cells) + ' |')
  seconds = ', '.join(f'{f}: {row["seconds"]:.0f} s' for f, row in rows.items())
  remaining = ablation.get('factors_to_run', [])
  progress = (f'**In progress: {len(rows)} of {len(rows) + len(remaining)} factors finished; still to run: '
              f'{", ".join(remaining)}.**\n\n' if remaining else '')
  text = (f'# kd_jax {ablation["task_title"]}: ablation\n\n{progress}{ablation["data_warning"]}'
          f'Data: {ablation["data_source"]}\n\nSeeds {ablation["seeds"]} (n = {len(ablation["seeds"])}); cells: '
          'mean ± sample std over seeds; gains paired by seed. Each factor changes the settings listed from the '
          'first row\'s; a teacher is trained once per distinct teacher setting and restored by every later factor '
          f'with the same.{paper_sentence(ablation)}\n\n' + '\n'.join(lines) + '\n\n![gains](ablation.png)'
          f'\n\n{reports.wall_time(seconds)} on {ablation["num_devices"]} × '
          f'{ablation["device"]}{reports.precision_note(ablation["config"])}.\n')
  reports.write(workdir, 'ablation', ablation, text, json_indent=1)


def _flat(tree: Dict[str, Any], prefix: str = '') -> Dict[str, Any]:
  flat = {}
  for key, value in tree.items():
    flat.update(_flat(value, f'{prefix}{key}.') if isinstance(value, dict) else {f'{prefix}{key}': value})
  return flat


def plot_student_epochs(sweep: Dict[str, Any], path: str):
  """Accuracy on the two headline test sets and ECE on the first against student epochs; the KD setups' gains on the
  first, with the paper's marked."""
  plt = reports.pyplot()
  rows = sweep['student_epochs']
  epochs = [float(e) for e in rows]
  first = next(iter(rows.values()))
  fig, axes = plt.subplots(1, 4, figsize=(18, 4.2))
  color = {name: f'C{i}' for i, name in enumerate(first['setups'])}  # a KD setup's gain in its own colour
  first_set, second_set = sweep['headline_sets']
  for col, (test_set, metric) in enumerate(((second_set, 'accuracy'), (first_set, 'accuracy'), (first_set, 'ece'))):
    ax, scale = axes[col], 100.0 if metric == 'accuracy' else 1.0
    for name, setup in first['setups'].items():
      stats = [row['setups'][name]['summary'][test_set][metric] for row in rows.values()]
      ax.errorbar(epochs, [scale * s['mean'] for s in stats], yerr=[scale * s['std'] for s in stats], capsize=3,
                  marker='o', color=color[name], label=setup['title'])
    ax.set_title(f'{sweep["test_sets"][test_set]} {metric}')
    ax.set_ylabel('accuracy (%)' if metric == 'accuracy' else 'ECE')
  ax = axes[3]
  for name in first['gain_over_independent']:
    control = control_of(name, first['setups'])
    stats = [row['gain_over_independent'][name][first_set] for row in rows.values()]
    ax.errorbar(epochs, [100 * s['mean'] for s in stats], yerr=[100 * s['std'] for s in stats], capsize=3,
                marker='o', color=color[name],
                label=f'{first["setups"][name]["title"]} − {first["setups"][control]["title"]}')
  mark_paper_gain(sweep, ax, first_set, vertical=False)
  ax.axhline(0, color='grey', linewidth=0.5)
  ax.set_title(f'{sweep["test_sets"][first_set]}: gain over independent')
  ax.set_ylabel('accuracy points')
  for ax in axes:
    ax.set_xscale('log')
    ax.set_xticks(epochs, [f'{e:g}' for e in epochs])
    ax.minorticks_off()
    ax.set_xlabel('student epochs')
    ax.legend(fontsize=7)
  fig.suptitle(f'Mean ± std over {len(sweep["seeds"])} seeds')
  fig.tight_layout()
  reports.save_figure(fig, path, dpi=110)
