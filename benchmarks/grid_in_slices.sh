#!/usr/bin/env bash
# A seed grid longer than one call of a time-limited machine (the lent accelerators: 10 minutes a call, 64 MiB
# carried in, 8 files of ≤ 16 MiB back), run as slices, one a call. Each slice unpacks the workdir the last one
# packed (if any), runs `python -m kd_jax.grid` for at most SECONDS — then SIGTERM makes kd_jax save a checkpoint
# and exit (75: run again) — and packs the workdir into OUT_DIR for the next slice: the newest checkpoint of each
# setup (the ones kd_jax resumes from), no compilation cache or lock, in gzip parts of ≤ 15 MB, with the log and,
# once the grid has finished, its grid.md/.json.
#
#   bash benchmarks/grid_in_slices.sh PACKED_DIR OUT_DIR SECONDS GRID_FLAGS...
#
# PACKED_DIR: the last slice's OUT_DIR (missing or empty for the first slice). Exit status: the grid's (0 finished,
# 75 stopped to be resumed, 137 killed 60 s after the SIGTERM). Growing --config.setups from slice to slice keeps a
# pack small: a vmapped paper-width MLP's checkpoint (4 seeds) is ~28 MB, a CNN's ~6 MB. The `:paper` claims grid
# (docs/results.md) on one H100, ~20 min of compute in three slices:
#   1. ... PACKED_DIR=none OUT=$OUT 540 --config=configs/mnist_grid.py:paper "--config.setups=('cnn',)" FLAGS
#   2. the same from slice 1's pack, "--config.setups=('cnn','mlp')"
#   3. the same from slice 2's pack, "--config.setups=('cnn','mlp','cnn_to_mlp')"
# with FLAGS: --config.data.dir=… --config.seed_parallelism=vmap --config.steps_per_dispatch=100.
set -uo pipefail
packed=${1:?usage: bash benchmarks/grid_in_slices.sh PACKED_DIR OUT_DIR SECONDS GRID_FLAGS...}
out=${2:?usage: bash benchmarks/grid_in_slices.sh PACKED_DIR OUT_DIR SECONDS GRID_FLAGS...}
seconds=${3:?usage: bash benchmarks/grid_in_slices.sh PACKED_DIR OUT_DIR SECONDS GRID_FLAGS...}
shift 3
case "$*" in *--workdir*) echo "grid_in_slices.sh sets --workdir itself" >&2; exit 2 ;; esac
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
root=$(mktemp -d)
workdir=$root/workdir

parts=("$packed"/workdir.tar.gz.part-*)
if [ -e "${parts[0]}" ]; then
  cat "${parts[@]}" | tar -xzf - -C "$root" || { echo "cannot unpack ${parts[*]}" >&2; exit 2; }
  echo "resuming the workdir packed in $packed (${#parts[@]} part(s))" | tee -a "$out/log.txt"
fi

PYTHONUNBUFFERED=1 timeout --preserve-status -s TERM -k 60 "$seconds" \
  python -m kd_jax.grid --workdir="$workdir" "$@" 2>&1 | tee -a "$out/log.txt"
rc=${PIPESTATUS[0]}
echo "grid_in_slices.sh: the grid exited $rc" | tee -a "$out/log.txt"

# kd_jax resumes from each run's newest step (a folder named by its number): drop the older one Orbax keeps. Training-
# path snapshots (`snapshots/<step>`) all stay.
python - "$workdir" <<'EOF'
import pathlib, shutil, sys
for run in [p for p in pathlib.Path(sys.argv[1]).rglob('*') if p.is_dir() and p.name != 'snapshots']:
  if not run.exists():  # inside a step dropped already
    continue
  steps = sorted((p for p in run.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
  for step in steps[:-1]:
    shutil.rmtree(step)
EOF
tar -czf - -C "$root" --exclude=workdir/.jax_cache --exclude=workdir/kd_jax.lock workdir \
  | split -b 15M -d - "$out/workdir.tar.gz.part-"
cp "$workdir"/grid.md "$workdir"/grid.json "$out"/ 2>/dev/null
ls -l "$out" | tee -a "$out/log.txt"
exit "$rc"
