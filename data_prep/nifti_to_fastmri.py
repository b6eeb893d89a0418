"""Compatibility shim: ``python -m data_prep.nifti_to_fastmri`` runs ``mridiff prepare nifti`` inside the checkout.

The code is :mod:`mridiff.prep.nifti_to_fastmri` (installed with the package); its functions are re-exported
here for the scripts and tests that import ``data_prep.nifti_to_fastmri``.
"""

import sys
from collections.abc import Sequence

from mridiff.prep.nifti_to_fastmri import *  # noqa: F403


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mridiff prepare nifti`` with ``python -m`` style messages (``error: ...``); return the exit status."""
    from mridiff.commands.prepare import run_standalone

    return run_standalone("nifti", argv)


if __name__ == "__main__":
    sys.exit(main())
