"""Data preparation: NIfTI volumes to fastMRI-layout HDF5 with simulated k-space, splits, default dataset."""
