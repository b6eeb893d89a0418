"""Inference never imports the training stack (Lightning takes seconds to import and is not needed to sample)."""

from __future__ import annotations

import subprocess
import sys

MODULES = ["mridiff.inference.reconstruct", "mridiff.inference.superres", "mridiff.inference.generate",
           "mridiff.inference.calibration", "mridiff.inference.audit", "mridiff.inference.recon_files",
           "mridiff.inference.demo", "mridiff.inference.model", "mridiff.io.models"]


def test_importing_inference_does_not_import_lightning() -> None:
    code = ("import sys\n" + "".join(f"import {m}\n" for m in MODULES)
            + "bad = sorted(m for m in sys.modules if 'lightning' in m)\nassert not bad, bad[:5]\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
