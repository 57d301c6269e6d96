"""A stand-in ``sbatch``: runs the batch script at once on this machine as a job of ``--nodes`` × ``--ntasks-per-node``
tasks (read from its ``#SBATCH`` lines; ``srun`` is the stand-in :mod:`srun`), and, when the script asks for
``--requeue`` and a task was stopped by SIGTERM (exit 75: saved, can resume), runs it once more, as SLURM requeues a
preempted job. ``$STANDIN_ROOT/jobs`` records each run's exit status. Not a stand-in for: queues, time limits,
several machines, GPUs. The job's output goes to ``--output``, appended."""
import os
import re
import socket
import subprocess
import sys


def free_job_id() -> int:
  """A job id whose JAX coordinator port (JAX's SlurmCluster: id % 4096 + 61440) is free here."""
  for job_id in range(os.getpid() % 4096, os.getpid() % 4096 + 4096):
    with socket.socket() as s:
      try:
        s.bind(('127.0.0.1', job_id % 4096 + 61440))
        return job_id
      except OSError:
        continue
  raise SystemExit('sbatch: no free port')


def main(argv):
  script = argv[-1]
  text = open(script).read()
  options = dict(re.findall(r'^#SBATCH --([\w-]+)=(\S+)', text, re.M))
  requeue = re.search(r'^#SBATCH --requeue$', text, re.M) is not None
  job_id = free_job_id()
  env = {**os.environ, 'SLURM_JOB_ID': str(job_id), 'SLURM_JOB_NUM_NODES': options['nodes'],
         'SLURM_NTASKS_PER_NODE': options['ntasks-per-node']}
  print(f'Submitted batch job {job_id}', flush=True)
  root = os.environ['STANDIN_ROOT']
  output = options['output'].replace('%x', options['job-name']).replace('%j', str(job_id))
  for _ in range(2):
    with open(output, 'a') as log:  # --open-mode=append
      code = subprocess.run(['bash', script], env=env, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
    with open(os.path.join(root, 'jobs'), 'a') as f:
      f.write(f'{code}\n')
    if not (requeue and code == 75):
      break
  sys.exit(0)  # sbatch itself succeeded: the job's outcome is in its log


if __name__ == '__main__':
  main(sys.argv[1:])
