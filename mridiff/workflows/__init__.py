"""File workflows: read input files, run a facade of :mod:`mridiff.inference`, write the result files.

One module per command, each made of small steps (read -> run -> write) that the command line and the Python API
share:

* :mod:`~mridiff.workflows.recon`: one fastMRI HDF5 file -> submission HDF5, NIfTI, PNG panel, metrics entry;
  :mod:`~mridiff.workflows.recon_dir` runs many files (staged commits, skipping finished files, ``torchrun``);
* :mod:`~mridiff.workflows.superres`: a NIfTI volume or fastMRI scan -> super-resolved NIfTI, PNG, metrics;
* :mod:`~mridiff.workflows.augment`: a restartable directory of synthetic samples, its manifest and contact sheet;
* :mod:`~mridiff.workflows.audit` and :mod:`~mridiff.workflows.demo`: the memorisation audit and ``mridiff demo``;
* shared pieces: :mod:`~mridiff.workflows.common` (slice ranges, the inference log),
  :mod:`~mridiff.workflows.metrics_log` (``metrics.json``), :mod:`~mridiff.workflows.panels` (PNG panels),
  :mod:`~mridiff.workflows.distributed` (``torchrun`` ranks).

Workflows may import ``inference``, ``io``, ``data`` and ``physics``; never ``training`` or the commands
(``tests/architecture/test_layers.py``). This package imports nothing itself, so ``mridiff --help`` stays light.
"""
