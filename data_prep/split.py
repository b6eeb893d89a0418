"""Compatibility shim: ``python -m data_prep.split`` runs ``mridiff prepare split`` inside the checkout.

The code is :mod:`mridiff.prep.split` (installed with the package); its functions are re-exported
here for the scripts and tests that import ``data_prep.split``.
"""

import sys
from collections.abc import Sequence

from mridiff.prep.split import *  # noqa: F403


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mridiff prepare split`` with ``python -m`` style messages (``error: ...``); return the exit status."""
    from mridiff.commands.prepare import run_standalone

    return run_standalone("split", argv)


if __name__ == "__main__":
    sys.exit(main())
