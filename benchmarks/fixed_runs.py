"""The fixed set of runs whose numbers a refactoring must not change: record them, or check them against a record.

Six small CPU runs on the built-in demo sample and synthetic agreement data (no data files needed): the main job
(smoke), the seed grid with vmapped seeds, one ablation factor, the SVA smoke grid, one teacher objective with function
matching (DIST on crops, the teacher in the step), online KD. Every number of their reports (accuracies, ECEs,
agreements, gains, per-seed rows) is kept; timings, paths and configs are not.

  python benchmarks/fixed_runs.py --record docs/results/fixed_runs/before.json   # before a change
  python benchmarks/fixed_runs.py --check docs/results/fixed_runs/before.json    # after it: lists every number that moved

Records: ``before.json``, before the one-runner redesign (Dec 2026; checked through :data:`LAYOUTS` and
:data:`BY_DESIGN`, since the main job then became the seed grid), ``dec7.json``, after it, and
``dec7_sva_grid.json``, after SVA's job became the seed grid too (recorded on another machine than ``dec7.json``,
whose SVA ECEs this one rounds differently in the 8th digit, old code and new alike): check a new change against the
newest record, where nothing is "by design".

The runs are deterministic on one machine, jaxlib and number of cores; another CPU, jaxlib or core count may round
differently (XLA:CPU splits reductions by its thread count; docs/guide.md): then record on it first, from the old code.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

SMOKE_GRID = ['--config=configs/grid_smoke.py', '--config.seed_parallelism=vmap']
RUNS = {
    'main_job_smoke': ['kd_jax.main', '--config=configs/smoke.py'],
    'grid_smoke_vmapped': ['kd_jax.grid', *SMOKE_GRID],
    'ablation_one_factor': ['kd_jax.grid', '--config=configs/mnist_ablation.py:smoke',
                            "--config.factors=(('mlp_regularisers', {'models': {'mlp': {'l1': 1e-5, 'l2': 1e-5}}}),)"],
    'sva_smoke': ['kd_jax.main', '--config=configs/sva_smoke.py'],
    'objective_function_matching': ['kd_jax.grid', *SMOKE_GRID, "--config.setups=('cnn_to_mlp',)",
                                    '--config.student_loss=dist', '--config.cache_teacher_logits=False',
                                    "--config.student_overrides={'augment': 'crop'}"],
    'online_smoke': ['kd_jax.grid', *SMOKE_GRID, "--config.setups=('cnn_to_mlp',)", '--config.mode=online'],
}
# Report fields that are not results: how long, where, on what, with which config and seeds; how many test examples
# and the paper's gain (their layout changed when the grid took other tasks: Dec 2026).
NOT_RESULTS = ('seconds', 'timing', 'config', 'checkpoint', 'source', 'device', 'examples_per_sec', 'command',
               'num_test', 'paper_', 'seed')


# Reports whose layout changed, mapped onto the new one before comparing: (run, file in the record) → (its file now,
# {old key prefix: new key prefix}); and, for such a record only, the numbers that changed by design (key prefixes,
# after mapping), listed apart and not failing the check. The main job became the seed grid of its pair (Dec 2026): its teacher and
# distilled student are the grid's rows cnn and cnn_to_mlp; its control was the student's model trained from the
# students' random stream and is now the grid's independent row mlp, trained from the teachers' stream (as in every
# grid), so it, the gain over it and its settings field (now config.models.mlp) are other numbers.
# The SVA job became the seed grid of its pair too (Dec 2026): the same way, its teacher and distilled student are the
# rows lstm and lstm_to_transformer, its control the row transformer (from the teachers' stream now); the job's
# summary (means over runs, now each row's) and its per-run seed fields have no counterpart.
LAYOUTS = {('main_job_smoke', 'results.json'): ('grid.json', {'teacher.': 'setups.cnn.instances.0.',
                                                              'student.': 'setups.cnn_to_mlp.instances.0.',
                                                              'independent.': 'setups.mlp.instances.0.'}),
           ('sva_smoke', 'results.json'): ('grid.json', {'runs.teacher.': 'setups.lstm.instances.',
                                                         'runs.student.': 'setups.lstm_to_transformer.instances.',
                                                         'runs.independent.': 'setups.transformer.instances.'})}
BY_DESIGN = {'main_job_smoke': ('setups.mlp.', 'gain.', 'independent_settings.'),
             'sva_smoke': ('setups.transformer.', 'summary.', 'num_transfer')}


def in_current_layout(recorded):
  """``recorded`` with the files and keys of :data:`LAYOUTS` renamed as the code now writes them."""
  out = {}
  for name, reports in recorded.items():
    out[name] = {}
    for file, values in reports.items():
      new_file, prefixes = LAYOUTS.get((name, file), (file, {}))
      for key, value in values.items():
        if any(word in key for word in NOT_RESULTS):  # (a record written before the word was added)
          continue
        old = next((p for p in prefixes if key.startswith(p)), None)
        out[name].setdefault(new_file, {})[prefixes[old] + key[len(old):] if old else key] = value
  return out


def numbers(tree, prefix=''):
  """The numeric leaves of a report as {dotted.path: value}, without :data:`NOT_RESULTS`."""
  if isinstance(tree, dict):
    out = {}
    for key, value in tree.items():
      if not any(word in str(key) for word in NOT_RESULTS):
        out.update(numbers(value, f'{prefix}{key}.'))
    return out
  if isinstance(tree, list):
    out = {}
    for i, value in enumerate(tree):
      out.update(numbers(value, f'{prefix}{i}.'))
    return out
  if isinstance(tree, (int, float)) and not isinstance(tree, bool):
    return {prefix[:-1]: tree}
  return {}


def run(name, args, root):
  workdir = os.path.join(root, name)
  t0 = time.perf_counter()
  done = subprocess.run([sys.executable, '-m', *args, f'--workdir={workdir}'], capture_output=True, text=True,
                        check=False)
  if done.returncode:
    sys.exit(f'{name} failed ({done.returncode}):\n{done.stderr[-3000:]}')
  reports = {}
  for folder, _, files in sorted(os.walk(workdir)):
    for file in sorted(files):
      if file.endswith('.json') and file not in ('kd_jax_job.json', 'vocab.json', 'metadata.json'):
        path = os.path.join(folder, file)
        with open(path) as f:
          reports[os.path.relpath(path, workdir)] = numbers(json.load(f))
  print(f'{name}: {sum(map(len, reports.values()))} numbers in {", ".join(reports)} '
        f'({time.perf_counter() - t0:.0f} s)', flush=True)
  return reports


def differences(recorded, now):
  """(moved, added): 'run/file: key recorded → now' for each recorded number that changed or vanished, and the keys
  of numbers the record did not have (a report that gained a metric)."""
  moved, added = [], []
  for name in sorted(set(recorded) | set(now)):
    for file in sorted(set(recorded.get(name, {})) | set(now.get(name, {}))):
      old, new = recorded.get(name, {}).get(file, {}), now.get(name, {}).get(file, {})
      for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if key not in old:
          added.append(f'{name}/{file}: {key}')
        elif not (a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))):
          moved.append(f'{name}/{file}: {key} {a!r} → {b!r}')
  return moved, added


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  action = parser.add_mutually_exclusive_group(required=True)
  action.add_argument('--record', help='write the numbers to this JSON file')
  action.add_argument('--check', help='compare the numbers with this JSON file')
  parser.add_argument('--only', default='', help='comma-separated run names (default: all of ' + ', '.join(RUNS))
  args = parser.parse_args()
  chosen = [n for n in args.only.split(',') if n] or list(RUNS)
  unknown = set(chosen) - set(RUNS)
  if unknown:
    sys.exit(f'unknown runs {sorted(unknown)}; choose from {list(RUNS)}')
  with tempfile.TemporaryDirectory() as root:
    now = {name: run(name, RUNS[name], root) for name in chosen}
  if args.record:
    with open(args.record, 'w') as f:
      json.dump(now, f, indent=1, sort_keys=True)
    print(f'recorded {len(now)} runs in {args.record}')
    return
  with open(args.check) as f:
    recorded = {name: reports for name, reports in json.load(f).items() if name in chosen}
  moved, added = differences(in_current_layout(recorded), now)
  old_layout = {name for name, file in LAYOUTS if file in recorded.get(name, {})}
  total = sum(len(v) for reports in recorded.values() for v in reports.values())
  if added:
    print(f'{len(added)} numbers are new (not in the record), e.g. {", ".join(added[:3])}')
  by_design = [m for m in moved if m.split('/')[0] in old_layout
               and m.split(':')[1].split()[0].startswith(BY_DESIGN.get(m.split('/')[0], ()))]
  if by_design:
    print(f'{len(by_design)} recorded numbers differ by design (benchmarks/fixed_runs.py: BY_DESIGN):\n'
          + '\n'.join(by_design))
    moved = [m for m in moved if m not in by_design]
    total -= len(by_design)
  if moved:
    print(f'{len(moved)} of the {total} recorded numbers differ from {args.check}:\n' + '\n'.join(moved))
    sys.exit(1)
  print(f'all {total} {"other " if by_design else ""}recorded numbers of {len(now)} runs equal {args.check}, '
        'bit for bit')


if __name__ == '__main__':
  main()
