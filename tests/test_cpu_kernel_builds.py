"""The vectorised CPU kernels are built once per instruction set (AVX-512, AVX2, baseline)
and one is picked at run time. The widest runs in every other test; here the narrower
builds, selected with ATEN_CPU_CAPABILITY in a fresh process, pass the same kernel tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlff import ops

pytestmark = pytest.mark.skipif(not ops.NATIVE, reason=f"C++ operators not built: {ops.WHERE}")

HERE = Path(__file__).resolve().parent
KERNEL_TESTS = [
    "test_symmetry_ops.py::test_kernel_matches_reference_values_and_gradients",
    "test_symmetry_ops.py::test_gradcheck_and_gradgradcheck",
    "test_symmetry_ops.py::test_bp_model_same_energy_forces_and_training_gradient",
    "test_edge_conv_ops.py::test_edge_conv_matches_pytorch",
    "test_edge_conv_ops.py::test_edge_conv_gradcheck_to_third_order",
    "test_edge_conv_ops.py::test_export_forms_equal_the_autograd_operators",
    "test_edge_conv_ops.py::test_fused_filter_matches_pytorch",
    "test_edge_conv_ops.py::test_deployed_schnet_with_fused_filter_equals_python_model",
    "test_radial_table.py::test_operator_equals_pytorch_interpolation",
    "test_radial_table.py::test_operator_gradcheck_and_refusals",
    "test_tensor_product_ops.py::test_kernel_matches_e3nn",
    "test_tensor_product_ops.py::test_gradcheck_and_gradgradcheck",
]


@pytest.mark.parametrize("capability, level", [("default", 0), ("avx2", 1)])
def test_narrower_isa_builds_pass_the_kernel_tests(capability, level):
    if ops.cpu_kernel_level() < level:
        pytest.skip(f"this CPU cannot run the {capability} build")
    env = dict(os.environ, ATEN_CPU_CAPABILITY=capability)
    probe = subprocess.run([sys.executable, "-c", "from mlff import ops; print(ops.cpu_kernel_level())"],
                           env=env, capture_output=True, text=True, check=True)
    assert int(probe.stdout) == level
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *KERNEL_TESTS],
                         env=env, cwd=HERE, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "skipped" not in run.stdout
