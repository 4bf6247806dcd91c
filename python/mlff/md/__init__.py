"""``mlff md``: named MD protocols run in plain ``lmp`` (or, for ASE-only reference
calculators, in ASE) with a common output layout that ``mlff analyze`` reads.

* :mod:`.protocols` -- the registry: name -> LAMMPS template + parameters;
* :mod:`.runner` -- renders a run directory, runs ``lmp`` / ``mpirun -np N lmp``,
  writes ``summary.json``;
* :mod:`.reference` -- the same protocols driven by ASE (EMT, GFN2-xTB);
* :mod:`.cli` -- the ``mlff md`` command.
"""

from ..errors import MLFFError


class MDError(MLFFError):
    """An MD run could not be set up or did not start (the message names the file or value)."""
