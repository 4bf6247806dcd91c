"""Datasets: starting structures, reference calculators, MD sampling, extxyz I/O.

Submodules: :mod:`.molecules`, :mod:`.calculators`, :mod:`.generate`,
:mod:`.io`, :mod:`.cli` (the ``mlff data`` command).
"""
