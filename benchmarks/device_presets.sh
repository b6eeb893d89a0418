#!/usr/bin/env bash
# The prepared GPU check of issue 15 (benchmarks/gpu_presets.py): preset latency at 320², single- and 15-coil, a
# batched 30-slice volume, peak memory, bf16 vs fp32 quality. Results go to $OUT (gpu_presets.json/.md).
# Prepare here, then run with the device tool, carrying .whl and .devdata (both git-ignored):
#   pip download --no-deps -d .whl monai fastmri sigpy nibabel runstats safetensors
#   mkdir -p .devdata/val && cp $(ls work_data/cheng256/singlecoil_val/*.h5 | awk 'NR % 30 == 1') .devdata/val/
#   run: bash benchmarks/device_presets.sh        (carry: [".whl", ".devdata"], timeout_s about 420)
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi -L > "$OUT/device.txt" 2>&1
python3 -c "import torch, monai, fastmri, sigpy; print('torch', torch.__version__, torch.cuda.get_device_name(0))" || exit 1
timeout "${CHECK_S:-360}" python3 benchmarks/gpu_presets.py --images .devdata/val --out "$OUT/gpu_presets" \
  2>&1 | tee "$OUT/gpu_presets.log"
