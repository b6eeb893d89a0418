"""Compatibility shim: ``python -m data_prep.make_default_dataset``
runs ``mridiff prepare default-dataset`` inside the checkout.

The code is :mod:`mridiff.prep.default_dataset` (installed with the package); its functions are re-exported
here for the scripts and tests that import ``data_prep.make_default_dataset``.
"""

import sys
from collections.abc import Sequence

from mridiff.prep.default_dataset import *  # noqa: F403


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mridiff prepare default-dataset`` with ``python -m`` style messages; return the exit status."""
    from mridiff.commands.prepare import run_standalone

    return run_standalone("default-dataset", argv)


if __name__ == "__main__":
    sys.exit(main())
