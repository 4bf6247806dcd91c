"""mlff: machine-learned interatomic force fields, from training to LAMMPS.

Units throughout: eV, Å, eV/Å, fs (LAMMPS ``units metal``).
"""

__version__ = "0.1.0"
