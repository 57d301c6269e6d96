"""What the launchers share: settings from flags or the environment, the job's command line, printed commands."""
import argparse
import os
import shlex
import shutil
import subprocess
import sys
from typing import List, Optional, Sequence, Union

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository
JOBS = {'main': 'kd_jax.main', 'grid': 'kd_jax.grid'}
# The JAX that kd_jax is tested with (CI: pip's newest, 0.10.2 in Dec 2026); workers install exactly this.
TESTED_JAX = '0.10.2'
WORKER_PYTHON = '3.11'  # kd_jax's dependencies need ≥ 3.11; TPU VM images ship 3.10


def add_setting(parser: argparse.ArgumentParser, name: str, env: str, help_text: str, default: str = ''):
  """A string flag whose default comes from the environment variable ``env``."""
  parser.add_argument(f'--{name}', default=os.environ.get(env, default),
                      help=f'{help_text} (default: ${env}{f" or {default}" if default else ""})')
  parser.set_defaults(**{f'_env_{name}': env})


def require(parser: argparse.ArgumentParser, args: argparse.Namespace, *names: str):
  """Exits with a usage error naming every missing setting and its environment variable."""
  missing = [f'--{n} (or ${getattr(args, f"_env_{n}")})' for n in names if not getattr(args, n)]
  if missing:
    parser.error('missing ' + ', '.join(missing))


def require_tool(name: str, purpose: str):
  """Exits as a usage error (status 2, one line) when the command-line tool ``name`` is not on PATH, before anything
  is written or created; ``purpose``: what it is for and how to get it. A dry run needs no tool: it runs nothing."""
  if shutil.which(name) is None:
    print(f'launch: error: {name} not found on PATH: {purpose}; --dry-run prints the plan without it',
          file=sys.stderr, flush=True)
    raise SystemExit(2)


def add_job_flags(parser: argparse.ArgumentParser, several_configs: bool = False):
  parser.add_argument('--job', choices=sorted(JOBS), default='main',
                      help='main: python -m kd_jax.main (any config); grid: python -m kd_jax.grid (seed-grid configs only)')
  parser.add_argument('--config', required=True, action='append' if several_configs else 'store',
                      help='e.g. configs/mnist_cnn_to_mlp.py or configs/mnist_grid.py:paper'
                      + (' (repeat the flag for several)' if several_configs else ''))
  parser.add_argument('--dry-run', action='store_true', help='print the commands, run nothing')
  parser.add_argument('--no_validate', action='store_true',
                      help="skip checking the job's config here first (python -m kd_jax.validate)")
  parser.add_argument('overrides', nargs='*', help='after --: flags for the job, e.g. -- --config.seed=1')


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
  """``parser.parse_args``, with ``--dry-run`` recognised anywhere on the line (also after ``--``, where it would
  otherwise reach the job and everything would run for real)."""
  argv = list(argv)
  dry_run = '--dry-run' in argv
  args = parser.parse_args([a for a in argv if a != '--dry-run'])
  args.dry_run = dry_run
  return args


def job_command(job: str, config: str, workdir: str, overrides: Sequence[str] = (),
                python: str = 'python3') -> List[str]:
  """The job's command line: ``python -m kd_jax.<job> --config=… --workdir=… <overrides>``."""
  config_file = config.split(':')[0]
  if not os.path.isfile(os.path.join(ROOT, config_file)):
    raise SystemExit(f'launch: error: --config={config}: {config_file} is not a file of the repository')
  return [python, '-m', JOBS[job], f'--config={config}', f'--workdir={workdir}', *overrides]


def validate(job: str, config: str, overrides: Sequence[str], devices: int):
  """Checks the job's config, variants and overrides on this machine for ``devices`` devices (kd_jax.validate, in a
  subprocess that sees that many CPU devices), before anything is created; exits with its one-line error."""
  command = [sys.executable, '-m', 'kd_jax.validate', f'--job={job}', f'--devices={devices}', f'--config={config}',
             *overrides]
  result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
  if result.returncode:
    lines = result.stderr.strip().splitlines() or ['(no output)']
    if 'No module named' in result.stderr:
      raise SystemExit(f'launch: error: cannot check the config here ({lines[-1]}): install kd_jax locally '
                       "(pip install -e .), or pass --no_validate to launch without the check")
    raise SystemExit(f'launch: error: the job would fail on the {devices}-device target: '
                     f'{lines[-1].removeprefix("kd_jax: error: ")}')
  print(f'# {result.stdout.strip().splitlines()[-1].removeprefix("kd_jax: ")}', flush=True)


class Shell:
  """Prints every command as it can be typed in a shell, then runs it (unless ``dry_run``)."""

  def __init__(self, dry_run: bool):
    self.dry_run = dry_run

  def run(self, command: Union[str, List[str]], capture: bool = False, check: bool = True,
          echo: bool = True) -> Optional[str]:
    """Runs ``command`` (a list, or a string for a shell pipeline); returns its stdout when ``capture``.
    ``echo=False``: not printed (a check repeated while waiting; a dry run prints it once)."""
    text = command if isinstance(command, str) else shlex.join(command)
    if echo or self.dry_run:
      print(text, flush=True)
    if self.dry_run:
      return None
    result = subprocess.run(command, shell=isinstance(command, str), check=False, text=True,
                            stdout=subprocess.PIPE if capture else None)
    if check and result.returncode:
      raise SystemExit(f'launch: error: exit status {result.returncode}: {text}')
    return result.stdout if capture else None

  def note(self, text: str):
    """A line that is not a command (commented, so the printed plan stays a valid shell script)."""
    print(f'# {text}', flush=True)

