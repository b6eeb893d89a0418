#!/usr/bin/env bash
# The one prepared GPU run (see benchmarks/README.md): install carried wheels, build the default dataset,
# measure CUDA throughput/latency, train the bundled models under fixed time budgets, copy results to $OUT.
# Usage on the device machine: bash benchmarks/device_run.sh  (needs .whl/ and .devdata/src carried)
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
log() { echo "[$(date +%H:%M:%S)] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
cp -r .whl/runstats /tmp/site/
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi -L > "$OUT/device.txt" 2>&1
python3 -c "import torch, monai, fastmri, sigpy, nibabel; print('torch', torch.__version__, 'monai', monai.__version__)" || exit 1
rm -rf runs
log "building dataset"
[ -f work_data/default/provenance.json ] || python3 -m data_prep.make_default_dataset work_data/default --size 128 --coils 8 --sources-dir .devdata/src \
  > "$OUT/dataset.log" 2>&1 || { log "dataset failed"; tail -5 "$OUT/dataset.log"; exit 1; }
mkdir -p /tmp/res
declare -A LIMIT=([recon]=${RECON_S:-200} [sr]=68 [augment]=68)
for task in ${TASKS:-recon sr augment}; do
  log "training $task"
  timeout "${LIMIT[$task]}" python3 -m mridiff.cli train --task $task -c configs/${task}_default.yaml --no-progress \
    > "/tmp/res/train_$task.log" 2>&1 || log "train $task exit $?"
  tail -3 "/tmp/res/train_$task.log"
  if [ -f runs/${task}_default/model.safetensors ]; then
    cp runs/${task}_default/model.safetensors "$OUT/$task.safetensors"
    for f in model.json model.sha256 loss.csv loss.png; do
      cp runs/${task}_default/$f "/tmp/res/${task}_$f" 2>/dev/null
    done
  fi
done
log "gpu checks"
timeout "${CHECK_S:-85}" python3 benchmarks/gpu_check.py ${CHECK_ARGS:-} --out "$OUT/gpu_check.json" || log "gpu_check stopped"
cp "$OUT/dataset.log" /tmp/res/ 2>/dev/null
tar -C /tmp/res -cf "$OUT/results.tar" .
log "done"
ls -la "$OUT"
