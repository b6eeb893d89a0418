"""Compatibility re-export: the simulated-scan writer lives in the package (``mridiff.data.h5_writer``)."""

from mridiff.data.h5_writer import COIL_MODEL, PHASE_MODEL, SimulationSpec, write_simulated_scan

__all__ = ["COIL_MODEL", "PHASE_MODEL", "SimulationSpec", "write_simulated_scan"]
