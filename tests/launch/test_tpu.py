
from conftest import ROOT
from launchers import launch
from launchers import words

SETTINGS = ['--name=kd-grid', '--project=my-project', '--zone=us-central2-b', '--accelerator_type=v4-32',
            '--workdir=gs://my-bucket/kd/grid']
WHERE = ['--zone=us-central2-b', '--project=my-project']


def test_dry_run_prints_create_install_run_fetch_delete():
  code, lines, _ = launch('tpu', *SETTINGS, '--job=grid', '--config=configs/mnist_grid.py:paper', '--dry-run',
                          '--env=LIBTPU_INIT_ARGS=--xla_tpu_megacore_fusion=true', '--',
                          '--config.num_seeds=5', "--config.setups=('cnn', 'cnn_to_mlp')")
  assert code == 0
  # First the job's config is checked here, for the slice's 16 devices (v4-32: 32 TensorCores, 2 per device).
  assert lines.pop(0) == '# the config is valid for grid on 16 device(s)'
  commands = [words(line) for line in lines]
  assert commands[0] == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'create', 'kd-grid', *WHERE,
                         '--accelerator-type=v4-32', '--version=tpu-ubuntu2204-base']
  pack = lines[1]  # this working tree (tracked and untracked, not ignored files) as an archive
  assert pack.startswith(f'git -C {ROOT} ls-files -z --cached --others --exclude-standard | tar -C {ROOT} -czf ')
  assert commands[2] == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'scp', '/tmp/kd_jax_kd-grid.tar.gz',
                         'kd-grid:kd_jax.tar.gz', '--worker=all', *WHERE]
  ssh = ['gcloud', 'compute', 'tpus', 'tpu-vm', 'ssh', 'kd-grid', '--worker=all', *WHERE, '--command']
  # A venv of Python 3.11 (TPU images ship 3.10) with the jax[tpu] that kd_jax is tested with.
  assert commands[3][:-1] == ssh
  install = commands[3][-1].split(' && ')
  assert install[3:] == ['(test -x ~/.local/bin/uv || python3 -m pip install -q --user uv)',
                         '~/.local/bin/uv venv -q --python 3.11 kd_jax_venv',
                         '~/.local/bin/uv pip install -q --python kd_jax_venv/bin/python -e "./kd_jax[gcs]" '
                         '"jax[tpu]==0.10.2"']
  assert commands[4][:-1] == ssh
  remote = words(commands[4][-1])  # what each worker runs, itself a shell line: the job, detached
  assert remote[:8] == ['cd', 'kd_jax', '&&', 'rm', '-f', '~/kd_jax_job.exit', '&&', '(setsid']
  trap, job, record = remote[11].split('; ')  # bash -c '…': outlives the job's SIGTERM to record its exit status
  assert trap == 'trap true TERM' and record == 'echo $? > ~/kd_jax_job.exit'
  # JAX finds the slice's hosts itself (KD_JAX_DISTRIBUTED=auto); the log stays on the worker.
  assert words(job) == ['env', 'KD_JAX_DISTRIBUTED=auto', 'LIBTPU_INIT_ARGS=--xla_tpu_megacore_fusion=true',
                        '../kd_jax_venv/bin/python', '-m', 'kd_jax.grid', '--config=configs/mnist_grid.py:paper',
                        '--workdir=gs://my-bucket/kd/grid', '--config.num_seeds=5',
                        "--config.setups=('cnn', 'cnn_to_mlp')", '>', '~/kd_jax_job.log', '2>&1']
  assert remote[-5:] == ['&', 'echo', '$!', '>', '~/kd_jax_job.pid)']  # its process group, for --steps=stop
  # Then, while it runs, each worker's state and worker 0's new log lines, every 30 s.
  assert lines[5].startswith('# every 30 s until the job has ended on every worker')
  assert commands[6][:-1] == ssh and commands[6][-1].startswith('echo "kd_jax_job $(hostname): ')
  assert commands[7][:-1] == [*ssh[:6], '--worker=0', *ssh[7:]] and commands[7][-1] == 'tail -n +1 ~/kd_jax_job.log'
  assert commands[8] == ['mkdir', '-p', 'results/kd-grid/logs']
  assert commands[9][:3] == ['gcloud', 'storage', 'rsync'] and commands[9][-2:] == ['gs://my-bucket/kd/grid',
                                                                                    'results/kd-grid']
  assert commands[11] == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'scp', 'kd-grid:kd_jax_job.log',
                          'results/kd-grid/logs/worker_K.log', '--worker=K', *WHERE]
  assert commands[12] == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'delete', 'kd-grid', *WHERE, '--quiet']
  assert len(lines) == 13


def test_status_logs_and_stop_of_a_running_job():
  for step, worker, command in (('status', 'all', 'echo "kd_jax_job $(hostname): '),
                                ('logs', '3', 'tail -n 100 ~/kd_jax_job.log'),
                                ('stop', 'all', 'kill -TERM -- -$(cat ~/kd_jax_job.pid)')):
    code, lines, err = launch('tpu', *SETTINGS, '--config=configs/smoke.py', f'--steps={step}', '--worker=3',
                              '--internal_ips', '--dry-run')
    assert code == 0, err
    assert len(lines) == 1 and words(lines[0])[:-1] == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'ssh', 'kd-grid',
                                                        f'--worker={worker}', *WHERE, '--internal-ip', '--command']
    assert words(lines[0])[-1].startswith(command)


def test_spot_queued_resource_waits_until_active_and_is_deleted_with_its_node():
  code, lines, _ = launch('tpu', *SETTINGS, '--config=configs/smoke.py', '--spot', '--queued', '--steps=create,delete',
                          '--dry-run', '--no_validate')  # (validation: tested above and below)
  assert code == 0
  assert words(lines[0]) == ['gcloud', 'compute', 'tpus', 'queued-resources', 'create', 'kd-grid', '--node-id=kd-grid',
                             *WHERE, '--accelerator-type=v4-32', '--runtime-version=tpu-ubuntu2204-base', '--spot']
  assert lines[1].startswith('# repeated every 30 s until the state is ACTIVE')
  assert words(lines[2]) == ['gcloud', 'compute', 'tpus', 'queued-resources', 'describe', 'kd-grid', *WHERE,
                             '--format=value(state.state)']
  assert words(lines[3]) == ['gcloud', 'compute', 'tpus', 'queued-resources', 'delete', 'kd-grid', *WHERE, '--force',
                             '--quiet']
  assert len(lines) == 4


def test_settings_from_the_environment_and_keep():
  env = {'CLOUDSDK_CORE_PROJECT': 'env-project', 'CLOUDSDK_COMPUTE_ZONE': 'europe-west4-a', 'KD_JAX_TPU_TYPE': 'v5litepod-8',
         'KD_JAX_TPU_RUNTIME': 'v2-alpha-tpuv5-lite', 'KD_JAX_WORKDIR': 'gs://b/run'}
  code, lines, _ = launch('tpu', '--name=t', '--config=configs/smoke.py', '--keep', '--dry-run', env=env)
  assert code == 0 and lines.pop(0) == '# the config is valid for main on 8 device(s)'  # v5litepod-8: 8 chips
  assert words(lines[0]) == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'create', 't', '--zone=europe-west4-a',
                             '--project=env-project', '--accelerator-type=v5litepod-8', '--version=v2-alpha-tpuv5-lite']
  assert '--workdir=gs://b/run' in lines[4] and not any(' delete ' in line for line in lines)


def test_dry_run_after_the_double_dash_is_still_a_dry_run():
  code, lines, _ = launch('tpu', *SETTINGS, '--config=configs/smoke.py', '--no_validate', '--', '--config.seed=1',
                          '--dry-run', env={'PATH': '/nonexistent'})  # no gcloud to run: a real run would fail at once
  assert code == 0 and len(lines) == 13 and '--dry-run' not in lines[4] and '--config.seed=1' in lines[4]


def test_a_config_that_would_fail_on_the_slice_is_refused_before_anything_is_created():
  for config, overrides, message in (
      ('configs/mnist_grid.py', ['--config.num_seeds=0'], 'config.num_seeds must be ≥ 1, got 0'),
      ('configs/mnist_cnn_to_mlp.py:tpu', [], "unknown config variant 'tpu'"),
      ('configs/mnist_cnn_to_mlp.py', ['--config.kd.tempreature=3'], 'a --config.* override names no field'),
      ('configs/mnist_cnn_to_mlp.py', ['--config.models.mlp.batch_size=100'],
       'config.models.mlp.batch_size must be a multiple of the 16 devices (each gets an equal share), got 100: use 96 '
       'or 112')):
    code, lines, err = launch('tpu', *SETTINGS, f'--config={config}', '--dry-run', '--', *overrides)
    assert code == 1 and not lines, config
    assert err.strip().startswith('launch: error: the job would fail on the 16-device target: ') and message in err


def test_bad_settings_are_usage_errors_naming_the_flag():
  code, lines, err = launch('tpu', '--name=t', '--config=configs/smoke.py', '--dry-run')
  assert code == 2 and not lines
  assert ('missing --project (or $CLOUDSDK_CORE_PROJECT), --zone (or $CLOUDSDK_COMPUTE_ZONE), --accelerator_type '
          '(or $KD_JAX_TPU_TYPE), --workdir (or $KD_JAX_WORKDIR)') in err
  code, lines, err = launch('tpu', *SETTINGS[:-1], '--workdir=/tmp/run', '--config=configs/smoke.py', '--dry-run')
  assert code == 2 and '--workdir=/tmp/run: the workers of a TPU slice share no disk; use a gs:// directory' in err
  code, _, err = launch('tpu', *SETTINGS, '--config=configs/smoke.py', '--steps=create,train', '--dry-run')
  assert code == 2 and '--steps: unknown step(s) train' in err
  code, lines, err = launch('tpu', *SETTINGS, '--config=configs/nope.py', '--dry-run')
  assert code == 1 and not lines and '--config=configs/nope.py: configs/nope.py is not a file of the repository' in err


def test_a_tpu_type_that_does_not_exist_is_refused_naming_the_sizes_there_are():
  """v4-7 used to become 3 devices (and batch-size advice for them); gcloud would create no such slice. Refused with
  or without --no_validate, before anything runs."""
  multiples = 'with N a multiple of 8 from 8 to'
  chips = 'with N one of 1, 4, 8, 16, 32, 64, 128, 256'
  for accelerator_type, sizes in (('v4-7', f'v4-N {multiples} 8192'), ('v4-08', f'v4-N {multiples} 8192'),
                                  ('v4-16384', f'v4-N {multiples} 8192'), ('v5p-4', f'v5p-N {multiples} 12288'),
                                  ('v3-0', f'v3-N {multiples} 2048'), ('v2-x', f'v2-N {multiples} 512'),
                                  ('v5litepod-2', f'v5litepod-N {chips}'), ('v6e-512', f'v6e-N {chips}')):
    for validate in ([], ['--no_validate']):
      code, lines, err = launch('tpu', *SETTINGS[:3], f'--accelerator_type={accelerator_type}', SETTINGS[4],
                                '--config=configs/smoke.py', '--dry-run', *validate)
      assert code == 2 and not lines, (accelerator_type, validate)
      assert f'--accelerator_type={accelerator_type}: no such TPU type: {sizes}' in err
  for accelerator_type in ('v2-8', 'v3-2048', 'v4-8', 'v4-1536', 'v5p-24', 'v5litepod-1', 'v6e-256'):
    code, lines, err = launch('tpu', *SETTINGS[:3], f'--accelerator_type={accelerator_type}', SETTINGS[4],
                              '--config=configs/smoke.py', '--dry-run', '--no_validate')
    assert code == 0 and f'--accelerator-type={accelerator_type}' in words(lines[0]), err


def test_without_gcloud_one_line_names_it_before_anything_runs(tmp_path):
  """No gcloud on PATH used to be a FileNotFoundError traceback (after the job's config was checked)."""
  code, lines, err = launch('tpu', *SETTINGS, '--config=configs/smoke.py', env={'PATH': str(tmp_path)})
  assert code == 2 and not lines
  assert err.splitlines() == ['launch: error: gcloud not found on PATH: the Google Cloud CLI, which creates and '
                              'reaches the TPU VM (install it: https://cloud.google.com/sdk/docs/install); --dry-run '
                              'prints the plan without it']
