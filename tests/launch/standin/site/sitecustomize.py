"""What a TPU VM's metadata server tells JAX (worker number, workers, coordinator), for the stand-in gcloud's workers:
a JAX cluster environment that ``jax.distributed.initialize()`` with no arguments detects, as it detects a real slice
(``GceTpuCluster``). Loaded only in processes of a stand-in worker (``STANDIN_TPU_WORKER_ID`` set)."""
import os

if 'STANDIN_TPU_WORKER_ID' in os.environ:
  from jax._src import clusters  # pylint: disable=g-import-not-at-top

  class StandInTpuVm(clusters.ClusterEnv):
    name = 'standin_tpu_vm'

    @classmethod
    def is_env_present(cls) -> bool:
      return True

    @classmethod
    def get_coordinator_address(cls, timeout_secs, override_coordinator_port=None) -> str:
      return os.environ['STANDIN_TPU_COORDINATOR']

    @classmethod
    def get_process_count(cls) -> int:
      return int(os.environ['STANDIN_TPU_WORKERS'])

    @classmethod
    def get_process_id(cls) -> int:
      return int(os.environ['STANDIN_TPU_WORKER_ID'])

    @classmethod
    def get_local_process_id(cls):
      return None
