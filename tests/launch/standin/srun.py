"""A stand-in ``srun``: starts the job step's tasks (nodes × tasks per node, from the stand-in sbatch) as local
processes with the variables SLURM gives each task (``SLURM_PROCID``, ``SLURM_LOCALID``, ``SLURM_NTASKS``,
``SLURM_STEP_NODELIST`` — here ``localhost``…), one CPU device each (one GPU per task); records their pids in
``$STANDIN_ROOT/tasks`` and exits with the first nonzero task status (SLURM's default)."""
import os
import subprocess
import sys


def main(argv):
  nodes, per_node = int(os.environ['SLURM_JOB_NUM_NODES']), int(os.environ['SLURM_NTASKS_PER_NODE'])
  procs = []
  for rank in range(nodes * per_node):
    env = {**os.environ, 'SLURM_PROCID': str(rank), 'SLURM_LOCALID': str(rank % per_node),
           'SLURM_NODEID': str(rank // per_node), 'SLURM_NTASKS': str(nodes * per_node),
           'SLURM_STEP_NODELIST': 'localhost', 'SLURM_STEP_NUM_NODES': str(nodes), 'JAX_PLATFORMS': 'cpu',
           'XLA_FLAGS': '--xla_force_host_platform_device_count=1'}
    procs.append(subprocess.Popen(argv, env=env))
  with open(os.path.join(os.environ['STANDIN_ROOT'], 'tasks'), 'w') as f:
    f.write('\n'.join(str(p.pid) for p in procs) + '\n')
  codes = [p.wait() for p in procs]
  sys.exit(next((c for c in codes if c), 0))


if __name__ == '__main__':
  main(sys.argv[1:])
