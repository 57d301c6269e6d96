#!/usr/bin/env bash
# The GPU check: every number of docs/performance.md's GPU table, in one call (sized for ≤ 8 minutes on one
# H100/H200), each section's table written to OUT_DIR as markdown, their logs to OUT_DIR/log.txt:
#   env.md         the device and the versions
#   vs_pytorch.md  kd_jax vs the plain PyTorch loop; then, data on the device and 100 steps a call both, kd_jax vs
#                  the strongest PyTorch loop (CUDA graphs, TF32): the MLP, the paper-width CNN, KD with a
#                  training-mode paper CNN teacher (benchmarks/vs_pytorch.py)
#   precision.md   the vmapped 4-seed paper CNN step and KD step at float32 highest / high / default and bfloat16,
#                  with each one's share of the device's peak (benchmarks/precision.py)
#   main_job.md    the main job's report (python -m kd_jax.main --config=configs/mnist_cnn_to_mlp.py)
#
#   bash benchmarks/gpu_check.sh OUT_DIR            # on the GPU machine, from the repository root
#   bash benchmarks/gpu_check.sh --smoke OUT_DIR    # the same sections at toy sizes, on a CPU (a few minutes)
#
# Needs kd_jax's dependencies and torch (the `bench` extra). MNIST from $DATA_DIR, else shared/data/mnist in the
# checkout, else the built-in demo sample (the main job's report says which). A section that fails is reported
# and the rest still run; the exit status is the number of failed sections.
set -uo pipefail
smoke=0
if [ "${1:-}" = --smoke ]; then smoke=1; shift; fi
out=${1:?usage: bash benchmarks/gpu_check.sh [--smoke] OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
failed=0

section() {  # section NAME LIMIT_SECONDS COMMAND...: its stdout to OUT/NAME.md, its stderr to log.txt
  local name=$1 limit=$2 start=$SECONDS rc
  shift 2
  echo "== $name: $*" | tee -a "$out/log.txt"
  timeout "$limit" "$@" > "$out/$name.md" 2>> "$out/log.txt"
  rc=$?
  echo "   $name: exit $rc after $((SECONDS - start)) s" | tee -a "$out/log.txt"
  cat "$out/$name.md"
  if [ "$rc" -ne 0 ]; then failed=$((failed + 1)); fi
}

data=${DATA_DIR:-}
if [ -z "$data" ] && [ -d shared/data/mnist ]; then data=shared/data/mnist; fi

{
  echo "| what | value |"
  echo "|---|---|"
  echo "| device | $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo 'no NVIDIA GPU') |"
  python -c 'import jax, flax, optax; print(f"| JAX | {jax.__version__} ({jax.default_backend()}, {jax.devices()[0].device_kind}) |\n| flax, optax | {flax.__version__}, {optax.__version__} |")'
  python -c 'import torch; print(f"| PyTorch | {torch.__version__} (CUDA {torch.version.cuda}) |")' 2>/dev/null || echo "| PyTorch | not installed |"
  echo "| MNIST | ${data:-the built-in demo sample} |"
  echo "| mode | $([ $smoke = 1 ] && echo 'smoke (toy sizes)' || echo full) |"
} > "$out/env.md" 2>> "$out/log.txt"
cat "$out/env.md"

# Dense peaks (TFLOP/s) from NVIDIA's H100 datasheet, for the precision table's "share of peak" (H200: as H100 SXM).
case "$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null)" in
  *H100*PCIe*) peaks='float32:highest=51,float32:high=378,float32:default=378,bfloat16=756' ;;
  *H100*|*H200*) peaks='float32:highest=67,float32:high=495,float32:default=495,bfloat16=989' ;;
  *) peaks='' ;;
esac

if [ "$smoke" = 1 ]; then
  section vs_pytorch 600 python benchmarks/vs_pytorch.py --rows=mlp_device,kd_cpu_train_teacher --repeats=1 \
      --seconds=0.2
  section precision 600 python benchmarks/precision.py --cnn=cpu --instances=1 --batch_size=8 --steps=1 \
      --precisions=float32:default,bfloat16
  section main_job 600 bash -c "python -m kd_jax.main --config=configs/smoke.py --workdir='$out/main_job_workdir' \
      >&2 && cat '$out/main_job_workdir/grid.md'"
else
  section vs_pytorch 200 python benchmarks/vs_pytorch.py \
      --rows=mlp_device,cnn_paper_train,kd_paper_train_teacher,kd_paper_teacher,infer_paper --repeats=3 --seconds=1
  section precision 200 python benchmarks/precision.py --steps=20 ${peaks:+--peak_tflops=$peaks}
  rm -rf /tmp/gpu_check_main_job  # a fresh run each time: a rerun on a warm machine must not resume the last one
  section main_job 80 bash -c "python -m kd_jax.main --config=configs/mnist_cnn_to_mlp.py \
      --workdir=/tmp/gpu_check_main_job ${data:+--config.data.dir=$data} >&2 && cat /tmp/gpu_check_main_job/grid.md"
fi
rm -rf "$out/main_job_workdir"
echo "gpu_check: $failed section(s) failed; tables in $out"
exit "$failed"
