"""Active learning (``mlff learn``): committees explore, the reference labels where they
disagree. :mod:`.loop` is the loop, :mod:`.explore` the LAMMPS exploration,
:mod:`.select` the choice of frames, :mod:`.label` the reference calculations,
:mod:`.report` the report, :mod:`.config` the options."""
