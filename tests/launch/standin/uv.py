"""A stand-in ``uv`` for the workers' install line, without network: ``uv venv --python V DIR`` makes ``DIR/bin/python``
run the test's own interpreter (which has kd_jax's dependencies); ``uv pip install …`` records what it was asked to
install (``$STANDIN_ROOT/installs``) and checks that the unpacked tree it installs from is there. The job then
imports kd_jax from that tree (its working directory), as the real editable install would."""
import os
import sys


def main(argv):
  root = os.environ['STANDIN_ROOT']
  with open(os.path.join(root, 'installs'), 'a') as f:
    f.write(' '.join(argv) + '\n')
  if argv[0] == 'venv':
    directory = argv[-1]
    os.makedirs(os.path.join(directory, 'bin'), exist_ok=True)
    python = os.path.join(directory, 'bin', 'python')
    with open(python, 'w') as f:
      f.write(f'#!/bin/sh\nexec {os.environ["STANDIN_PYTHON"]} "$@"\n')
    os.chmod(python, 0o755)
  elif argv[:2] == ['pip', 'install']:
    editable = argv[argv.index('-e') + 1].strip('"').split('[')[0]
    if not os.path.isfile(os.path.join(editable, 'setup.py')):
      sys.exit(f'error: {editable} is not a Python project')
  else:
    sys.exit(f'stand-in uv: unknown command {argv}')


if __name__ == '__main__':
  main(sys.argv[1:])
