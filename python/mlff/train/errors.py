"""Running energy and force error sums of training and validation (shared by the trainer,
the composition baseline and the distributed reduction, which sums their vectors)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Errors:
    """Running sums of absolute and squared errors (energy per atom, force components)."""

    e_abs: float = 0.0
    e_sq: float = 0.0
    n_e: int = 0
    f_abs: float = 0.0
    f_sq: float = 0.0
    n_f: int = 0

    def add(self, e_pred, e_ref, n_atoms, f_pred, f_ref) -> None:
        """``e_pred`` may be ``None`` (direct-force model): only force errors are counted."""
        if e_pred is not None:
            de = ((e_pred - e_ref) / n_atoms).detach().double()
            self.e_abs += float(de.abs().sum()); self.e_sq += float((de**2).sum()); self.n_e += de.numel()
        df = (f_pred - f_ref).detach().double()
        self.f_abs += float(df.abs().sum()); self.f_sq += float((df**2).sum()); self.n_f += df.numel()

    def vector(self) -> list[float]:
        return [self.e_abs, self.e_sq, float(self.n_e), self.f_abs, self.f_sq, float(self.n_f)]

    @classmethod
    def from_vector(cls, v) -> "Errors":
        return cls(float(v[0]), float(v[1]), int(round(float(v[2]))), float(v[3]), float(v[4]), int(round(float(v[5]))))

    def summary(self) -> dict[str, float]:
        """MAE/RMSE in meV/atom (energy; NaN if no energies were predicted) and meV/Å (forces)."""
        if self.n_e == 0:
            e_mae = e_rmse = math.nan
        else:
            e_mae, e_rmse = 1e3 * self.e_abs / self.n_e, 1e3 * math.sqrt(self.e_sq / self.n_e)
        return {"energy_mae": e_mae, "energy_rmse": e_rmse,
                "force_mae": 1e3 * self.f_abs / max(self.n_f, 1), "force_rmse": 1e3 * math.sqrt(self.f_sq / max(self.n_f, 1))}
