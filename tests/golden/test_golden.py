"""Golden regression: 5 DDIM steps of the bundled reconstruction model on a fixed input match stored values.

Any change to the loop, the schedule, the sampler, data consistency, normalisation or seeding shows up here.
When the bundled model itself changes, regenerate with ``python -m tests.golden.make_golden``.
"""

from __future__ import annotations

import numpy as np
import pytest

from mridiff.inference.model import default_model_path
from mridiff.inference.reconstruct import Reconstructor
from tests.golden.make_golden import GOLDEN, golden_output

pytestmark = pytest.mark.skipif(not default_model_path("recon").is_file(), reason="no bundled recon model")


def test_bundled_recon_model_ddim5_matches_golden() -> None:
    out = golden_output(Reconstructor(device="cpu"))
    expected = np.load(GOLDEN)
    assert out.shape == expected.shape == (1, 128, 128)
    # 1e-4 of the image's peak: far below any visible change, far above float32 roundoff across CPUs
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-4 * float(expected.max()))
