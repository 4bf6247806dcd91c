"""``mlff analyze`` and ``mlff report``: judge a potential by the MD it drives.

* :mod:`.trajectory` -- readers (run directory, LAMMPS log + dump, ASE trajectory,
  extxyz) -> one :class:`~.trajectory.Trajectory` of numpy arrays;
* :mod:`.energy` -- energy drift and fluctuation, temperature, momentum, net force;
* :mod:`.structure` -- g(r) / P(r), bonds, the stability verdict (freud, ASE);
* :mod:`.dynamics` -- unwrapping, MSD and the diffusion coefficient (freud), VACF and
  vibrational density of states (numpy FFT);
* :mod:`.plots` -- matplotlib figures;
* :mod:`.cli` -- the commands.
"""

from ..errors import DataError


class AnalysisError(DataError):
    """A trajectory, log or reference run lacks what an analysis needs (the message names the
    file and what is missing)."""
