"""Compatibility shim: ``python -m data_prep.cheng`` runs ``mridiff prepare cheng`` inside the checkout.

The code is :mod:`mridiff.prep.cheng` (installed with the package); its functions are re-exported
here for the scripts and tests that import ``data_prep.cheng``.
"""

import sys
from collections.abc import Sequence

from mridiff.prep.cheng import *  # noqa: F403


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mridiff prepare cheng`` with ``python -m`` style messages (``error: ...``); return the exit status."""
    from mridiff.commands.prepare import run_standalone

    return run_standalone("cheng", argv)


if __name__ == "__main__":
    sys.exit(main())
