"""Data preparation: MRI volumes and images to fastMRI-layout HDF5 with simulated k-space, splits, datasets.

Run as ``mridiff prepare <tool>`` (see :mod:`mridiff.commands.prepare`); ``python -m data_prep.<module>`` inside
the checkout runs the same code.
"""
