"""A deployed model that calls mlff's kernels (torch.ops.mlff.symmetry_functions,
torch.ops.mlff.tp_conv) runs in a real `lmp` and gives the forces of the same model on the
reference implementations (pure PyTorch / e3nn) in Python."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk

from mlff import ops
from mlff.calculator import MLFFCalculator
from mlff.deploy import export_model
from mlff.models import build_model

pytestmark = pytest.mark.skipif(not ops.NATIVE, reason=f"C++ operators not built: {ops.WHERE}")

MODELS = {  # kind: (reference implementation, hyperparameters)
    "bp": ("torch", dict(symmetry_functions="cu_emt_final", hidden=[8, 8])),
    "nequip": ("e3nn", dict(n_features=8, l_max=2, n_interactions=2, n_basis=6, radial_hidden=16)),
}


@pytest.mark.parametrize("kind", list(MODELS))
def test_lammps_with_kernels_equals_python_reference(kind, tmp_path):
    from test_descriptor_models import _lammps_helpers

    lmp = _lammps_helpers()
    reference, params = MODELS[kind]
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
    atoms.rattle(0.05, seed=5)
    paths = {}
    for impl in ("ops", reference):
        torch.manual_seed(0)
        model = build_model(kind, ["Cu"], 4.0, torch.float64, implementation=impl, **params)
        with torch.no_grad():  # non-trivial weights, the same for both implementations
            for p in model.parameters():
                p.add_(0.2 * torch.randn_like(p))
        paths[impl] = tmp_path / f"{impl}.pt"
        export_model(model, paths[impl])
    graph = str(torch.jit.load(str(paths["ops"])).inlined_graph)
    assert ("mlff::symmetry_functions" if kind == "bp" else "mlff::tp_conv") in graph
    res = lmp.lammps_single_point(tmp_path, atoms, paths["ops"], ["Cu"])
    ref = atoms.copy()
    ref.calc = MLFFCalculator(paths[reference])
    forces = ref.get_forces()
    assert np.abs(forces).max() > 1e-3
    np.testing.assert_allclose(res["forces"], forces, rtol=0, atol=1e-10 * np.abs(forces).max())
    assert res["energy"] == pytest.approx(ref.get_potential_energy(), rel=1e-10)
