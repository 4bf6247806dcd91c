"""Write toluene.data: one toluene molecule (C7H8) for LAMMPS, atom_style atomic.

Idealised geometry: planar benzene ring (C-C 1.39 A, ring C-H 1.08 A), methyl
carbon 1.51 A from the ipso carbon along the ring radius, tetrahedral methyl
hydrogens (C-H 1.09 A, H-C-C 109.47 deg), centred in a +-20 A box.
Atom type 1 = C, type 2 = H.  Usage: python make_toluene_data.py [out.data]
"""

import math
import sys

CC, CH_RING, C_METHYL, CH_METHYL = 1.39, 1.08, 1.51, 1.09
HALF_BOX = 20.0


def toluene():
    atoms = []  # (type, x, y, z)
    for k in range(6):  # ring carbons; k = 0 is the ipso carbon on +x
        a = math.radians(60 * k)
        atoms.append((1, CC * math.cos(a), CC * math.sin(a), 0.0))
    atoms.append((1, CC + C_METHYL, 0.0, 0.0))  # methyl carbon
    for k in range(1, 6):  # ring hydrogens, radially outward
        a = math.radians(60 * k)
        r = CC + CH_RING
        atoms.append((2, r * math.cos(a), r * math.sin(a), 0.0))
    theta = math.radians(180.0 - 109.4712)  # H-C(methyl)-C(ipso) is tetrahedral
    along, perp = CH_METHYL * math.cos(theta), CH_METHYL * math.sin(theta)
    for phi in (90.0, 210.0, 330.0):  # one H above the ring plane, two below
        p = math.radians(phi)
        atoms.append((2, CC + C_METHYL + along, perp * math.cos(p), perp * math.sin(p)))
    # centre the molecule at the origin
    n = len(atoms)
    c = [sum(a[d + 1] for a in atoms) / n for d in range(3)]
    # (+ 0.0 turns -0.0 into 0.0 so the file shows no "-0.000000")
    return [(t, round(x - c[0], 6) + 0.0, round(y - c[1], 6) + 0.0, round(z - c[2], 6) + 0.0)
            for t, x, y, z in atoms]


def main(out="toluene.data"):
    atoms = toluene()
    lines = ["toluene C7H8, idealised geometry (deploy/toluene/make_toluene_data.py)", "",
             f"{len(atoms)} atoms", "2 atom types", "",
             f"{-HALF_BOX} {HALF_BOX} xlo xhi", f"{-HALF_BOX} {HALF_BOX} ylo yhi",
             f"{-HALF_BOX} {HALF_BOX} zlo zhi", "", "Masses", "", "1 12.011  # C", "2 1.008  # H",
             "", "Atoms  # atomic", ""]
    for i, (t, x, y, z) in enumerate(atoms, start=1):
        lines.append(f"{i} {t} {x:.6f} {y:.6f} {z:.6f}")
    with open(out, "w") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
