# Sourced by scripts/gpu_checks.sh and scripts/gpu_lammps.sh on the lent GPU machine: the
# venv .venv-gpu over the image's Python (its torch with CUDA, and e3nn) plus every wheel
# carried under wheels/ (scripts/gpu_wheels.sh), and the device description in $RESULTS.
# Sets VENV, PY, RESULTS; expects ROOT.
WHEELS="${WHEELS:-$ROOT/wheels}"
RESULTS="${OUT:-$ROOT/gpu-out}"
VENV="$ROOT/.venv-gpu"
mkdir -p "$RESULTS"
[ -x "$VENV/bin/python" ] || "${PYTHON_GPU:-python3}" -m venv --system-site-packages "$VENV"
# one wheel at a time: a wheel built for another Python (cuEquivariance's ops are per
# CPython version) is reported and skipped instead of failing the whole install
while IFS= read -r wheel; do
  "$VENV/bin/pip" install --quiet --no-index --no-deps "$wheel" \
    || echo "gpu_venv.sh: skipped $(basename "$wheel") (not installable with this Python)" | tee -a "$RESULTS/skipped_wheels.txt"
done < <(find "$WHEELS" -name '*.whl' 2>/dev/null | sort)
PY="$VENV/bin/python"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no GPU'; print('torch', torch.__version__, torch.cuda.get_device_name())" \
  | tee "$RESULTS/device.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >> "$RESULTS/device.txt" || true
export PYTHONPATH="$ROOT/python${PYTHONPATH:+:$PYTHONPATH}"
