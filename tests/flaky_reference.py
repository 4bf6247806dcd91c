"""A reference calculator for the tests of mlff learn's labelling: EMT that fails on
structures whose first atom lies at x < 0.5 Å (a stand-in for an SCF that does not
converge on some frames)."""

from ase.calculators.emt import EMT


class FlakyEMT(EMT):
    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        if atoms is not None and atoms.positions[0, 0] < 0.5:
            raise RuntimeError("SCF did not converge (test stand-in)")
        super().calculate(atoms, properties, system_changes)


def flaky_emt():
    return FlakyEMT()
