"""Inference and the file workflows never import the training stack (Lightning takes seconds to import, and
sampling does not need it)."""

from __future__ import annotations

import subprocess
import sys

MODULES = ["mridiff.inference.reconstruct", "mridiff.inference.superres", "mridiff.inference.generate",
           "mridiff.inference.calibration", "mridiff.inference.model", "mridiff.io.models",
           "mridiff.workflows.recon", "mridiff.workflows.recon_dir", "mridiff.workflows.superres",
           "mridiff.workflows.augment", "mridiff.workflows.audit", "mridiff.workflows.demo"]


def test_importing_inference_does_not_import_lightning() -> None:
    code = ("import sys\n" + "".join(f"import {m}\n" for m in MODULES)
            + "bad = sorted(m for m in sys.modules if 'lightning' in m)\nassert not bad, bad[:5]\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
