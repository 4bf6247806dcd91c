"""Datasets: starting structures, reference calculators, MD sampling, extxyz I/O.

Submodules: :mod:`.molecules`, :mod:`.calculators` (with the LAMMPS wrapper
:mod:`.lammps_calc`), :mod:`.generate`, :mod:`.io`, :mod:`.cli` (the
``mlff data`` command).
"""
