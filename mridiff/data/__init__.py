"""Data input/output: fastMRI HDF5, NIfTI, ISMRMRD headers, transforms and k-space simulation."""
