#!/usr/bin/env bash
# A seed grid longer than one call of a time-limited machine (the lent accelerators: 10 minutes a call, 64 MiB
# carried in, 8 files of ≤ 16 MiB back), run as slices, one a call. Each slice unpacks the workdir the last one
# packed (if any), runs `python -m kd_jax.grid` for at most SECONDS — then SIGTERM makes kd_jax save a checkpoint
# and exit (75: run again) — and packs the workdir into OUT_DIR for the next slice: each run's newest checkpoint (the
# one kd_jax resumes from), no compilation cache, lock or unfinished Orbax write, in gzip parts of ≤ 15 MiB, beside
# the log and the grid's grid.md/.json (the report of the setups run so far).
#
#   bash benchmarks/grid_in_slices.sh PACKED_DIR|none OUT_DIR SECONDS GRID_FLAGS...
#
# PACKED_DIR: the last slice's OUT_DIR; `none` for the first slice. Exit status: the grid's (0 finished, 75 stopped
# to be resumed, 137 killed 20 s after the SIGTERM, 143 stopped before kd_jax took over its signals), or 2 when a
# pack cannot be read or written. Leave the call room beyond SECONDS: up to 20 s for the stop, and the (un)packing.
# Slices that grow --config.setups keep a pack small: a vmapped 4-seed checkpoint of the paper-width CNN is ~7 MB,
# of the MLP ~30 MB. The `:paper` claims grid on one H100 (docs/results.md), ~22 min of compute:
#   1. bash benchmarks/grid_in_slices.sh none $OUT 500 --config=configs/mnist_grid.py:paper \
#        "--config.setups=('cnn',)" --config.data.dir=DATA --config.seed_parallelism=vmap --config.steps_per_dispatch=100
#   2. the same from the last pack, until the teachers finish (945 s of training, plus loading and compiling each call)
#   3. from that pack with "--config.setups=('cnn','mlp','cnn_to_mlp')" (the MLPs and the students, ~330 s; a pack
#      of it stopped midway would be too large to carry on)
set -uo pipefail
usage='usage: bash benchmarks/grid_in_slices.sh PACKED_DIR|none OUT_DIR SECONDS GRID_FLAGS...'
packed=${1:?$usage}
out=${2:?$usage}
seconds=${3:?$usage}
shift 3
case "$*" in *--workdir*) echo "grid_in_slices.sh sets --workdir itself" >&2; exit 2 ;; esac
parts=()
if [ "$packed" != none ]; then
  parts=("$(cd "$packed" && pwd)"/workdir.tar.gz.part-*) || exit 2
  if [ ! -e "${parts[0]}" ]; then echo "no workdir.tar.gz.part-* in $packed" >&2; exit 2; fi
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -f "$out"/workdir.tar.gz.part-*
cd "$(dirname "$0")/.."
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
workdir=$root/workdir

if [ ${#parts[@]} -gt 0 ]; then
  cat "${parts[@]}" | tar -xzf - -C "$root" || { echo "cannot unpack ${parts[*]}" >&2; exit 2; }
  echo "resuming the workdir packed in $packed (${#parts[@]} part(s))" | tee -a "$out/log.txt"
fi

# --foreground: the signal goes to kd_jax alone, once (a second one would make it exit without saving).
PYTHONUNBUFFERED=1 timeout --foreground --preserve-status -s TERM -k 20 "$seconds" \
  python -m kd_jax.grid --workdir="$workdir" "$@" 2>&1 | tee -a "$out/log.txt"
rc=${PIPESTATUS[0]}
echo "grid_in_slices.sh: the grid exited $rc" | tee -a "$out/log.txt"
if [ ! -d "$workdir" ]; then exit "$rc"; fi

# kd_jax resumes from each run's newest checkpoint (an Orbax step folder: <step>/_CHECKPOINT_METADATA): drop the
# older one Orbax keeps and any write a kill cut short. Training-path snapshots (snapshots/<step>) all stay.
python - "$workdir" <<'EOF'
import pathlib, shutil, sys
for unfinished in list(pathlib.Path(sys.argv[1]).rglob('*.orbax-checkpoint-tmp-*')):  # listed before any is removed
  shutil.rmtree(unfinished)
for run in {metadata.parent.parent for metadata in pathlib.Path(sys.argv[1]).rglob('_CHECKPOINT_METADATA')}:
  if run.name == 'snapshots':
    continue
  steps = sorted((p for p in run.iterdir() if p.name.isdigit() and (p / '_CHECKPOINT_METADATA').exists()),
                 key=lambda p: int(p.name))
  for step in steps[:-1]:
    shutil.rmtree(step)
EOF
tar -czf - -C "$root" --exclude=workdir/.jax_cache --exclude=workdir/kd_jax.lock workdir \
  | split -b 15M -d - "$out/workdir.tar.gz.part-"
if [ "${PIPESTATUS[0]}${PIPESTATUS[1]}" != 00 ] || ! cat "$out"/workdir.tar.gz.part-* | gzip -t; then
  echo "grid_in_slices.sh: the pack in $out is broken" | tee -a "$out/log.txt"
  exit 2
fi
cp "$workdir"/grid.md "$workdir"/grid.json "$out"/ 2>/dev/null
ls -l "$out" | tee -a "$out/log.txt"
exit "$rc"
