"""Compatibility shim: the code lives in :mod:`mridiff.prep.templates` (installed with the package).

Used by ``mridiff prepare`` to find the source volumes (MNI152 templates, Colin27). Importing
this module gives the package module itself, so attributes (and monkeypatches in tests) are shared.
"""

import sys

from mridiff.prep import templates as _impl

sys.modules[__name__] = _impl
