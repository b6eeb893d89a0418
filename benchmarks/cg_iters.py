"""How many CG iterations per step multi-coil data consistency needs: PSNR and time per slice on validation slices.

Real clinical images, simulated 8-coil k-space (``python -m data_prep.cheng work_data/cheng256``); balanced preset
with only ``cg_iters`` changed; coil maps estimated once per slice and shared. Validation slices only (this chooses
the presets' ``cg_iters``).

    python benchmarks/cg_iters.py --ckpt training_state/recon_real.safetensors --slices 6
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import Case, by_number, evenly_spaced  # noqa: E402

from mridiff.inference.options import preset_options  # noqa: E402
from mridiff.inference.reconstruct import Reconstructor  # noqa: E402
from mridiff.metrics import psnr  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ckpt", default=None)
    p.add_argument("--slices", type=int, default=6)
    p.add_argument("--iters", type=int, nargs="+", default=[1, 2, 3, 5, 10])
    p.add_argument("--accelerations", type=int, nargs="+", default=[4, 8])
    args = p.parse_args()
    torch.set_num_threads(1)
    rec = Reconstructor(args.ckpt, device="cpu")
    files = evenly_spaced(sorted(Path("work_data/cheng256/multicoil_val").glob("*.h5"), key=by_number), args.slices)
    for acc in args.accelerations:
        scores: dict[int, list[float]] = {it: [] for it in args.iters}
        seconds = dict.fromkeys(args.iters, 0.0)
        for f in files:
            case = Case([(f, 0)], [], acc, 0)
            for it in args.iters:
                start = time.perf_counter()
                res = rec.reconstruct(case.kspace, case.mask, preset_options("balanced", cg_iters=it), multicoil=True,
                                      sens=case.sens)
                seconds[it] += time.perf_counter() - start
                scores[it].append(psnr(case.gt[0], res.mean[0], float(case.gt.max())))
        print(json.dumps({"acceleration": acc, "slices": len(files),
                          "PSNR": {it: round(float(np.mean(v)), 3) for it, v in scores.items()},
                          "seconds_per_slice": {it: round(s / len(files), 2) for it, s in seconds.items()}}))


if __name__ == "__main__":
    main()
