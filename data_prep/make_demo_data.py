"""Compatibility shim: ``python -m data_prep.make_demo_data`` runs ``mridiff prepare demo-data`` inside the checkout.

The code is :mod:`mridiff.prep.demo_data` (installed with the package); its functions are re-exported
here for the scripts and tests that import ``data_prep.make_demo_data``.
"""

import sys
from collections.abc import Sequence

from mridiff.prep.demo_data import *  # noqa: F403


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mridiff prepare demo-data`` with ``python -m`` style messages (``error: ...``); return the exit status."""
    from mridiff.commands.prepare import run_standalone

    return run_standalone("demo-data", argv)


if __name__ == "__main__":
    sys.exit(main())
