"""What a MEMIT update must leave alone, and the least-squares solves that respect it.

MEMIT's update at one layer is ``ΔW = R Aᵀ`` with ``A = adjusted keys``; three solves are offered:

* **plain** (Meng et al., 2023): ``A = (λC + KKᵀ)⁻¹ K`` — ``C`` protects what the layer stores on
  average over a corpus;
* **with live edits' keys** (``preserve_edits``): ``A = (λC + K_p K_pᵀ + KKᵀ)⁻¹ K``, where ``K_p``
  are the key columns of every edit still in the model — each earlier edit's keys are held where
  they are, so a later edit cannot overwrite it (AlphaEdit's ``K_p`` term, Fang et al., ICLR 2025);
* **null-space projected** (``nullspace > 0``): with ``P`` the projector onto the eigenvectors of
  ``C`` whose eigenvalues are below ``nullspace × the largest``,
  ``ΔW = R Kᵀ P (K_p K_pᵀ P + K Kᵀ P + ρI)⁻¹`` (AlphaEdit), so ``ΔW k ≈ 0`` for every key the
  corpus has — preserved knowledge is untouched by construction, at the cost of writing only
  through the directions the corpus leaves free.

:class:`PreservedKeys` keeps ``Σ k kᵀ`` of the live edits per layer; the method adds an edit's keys
when it is applied and takes them out when it is removed, so the sum always matches the model.
"""

from __future__ import annotations

import torch

from editor.covariance import CovarianceCache, ridged_cholesky, solve_adjusted_keys


class PreservedKeys:
    """``K_p K_pᵀ`` per layer over the live edits' key columns (float64, CPU), with a version that
    changes on every update (what cached factors are keyed by)."""

    def __init__(self) -> None:
        self.grams: dict[int, torch.Tensor] = {}
        self.columns: dict[int, int] = {}
        self.version = 0

    def add(self, layer: int, keys: torch.Tensor, sign: float = 1.0) -> None:
        """``keys``: (d_in, columns)."""
        k = keys.to("cpu", torch.float64)
        g = k @ k.T
        if layer in self.grams:
            self.grams[layer].add_(g, alpha=sign)
        else:
            self.grams[layer] = g * sign
        self.columns[layer] = self.columns.get(layer, 0) + int(sign) * k.shape[1]
        if self.columns[layer] <= 0:  # nothing live: drop the accumulated rounding too
            self.grams.pop(layer)
            self.columns.pop(layer)
        self.version += 1

    def gram(self, layer: int) -> torch.Tensor | None:
        return self.grams.get(layer)


class Solver:
    """Adjusted keys for one layer of one edit, under the configured preservation."""

    def __init__(self, stats: CovarianceCache, hp, fingerprint: str, preserved: PreservedKeys | None,
                 scale: float = 1.0):
        self.stats = stats
        self.hp = hp
        #: λ is ``hp.mom2_weight * scale`` (a retry's weaker protection, see MemitHparams.lambda_retries)
        self.scale = scale
        self.weight = hp.mom2_weight * scale
        self.fingerprint = fingerprint
        self.preserved = preserved if hp.preserve_edits else None
        self._factors: dict[tuple, torch.Tensor] = {}

    def adjusted_keys(self, layer: int, moment: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """``A`` (d_in, columns) such that ``ΔW = R Aᵀ`` for residuals ``R`` (d_out, columns)."""
        device = keys.device
        ckey = (self.fingerprint, layer, self.stats.key_of(moment))
        gram = self.preserved.gram(layer) if self.preserved is not None else None
        if self.hp.nullspace > 0:
            return self._projected(layer, moment, keys, gram, ckey)
        if gram is None:
            # chol(s·λC) = √s·chol(λC): a retry reuses the cached factor, scaled in the solve
            factor = self.stats.factor(moment, self.hp.mom2_weight, key=ckey, device=device)
            return solve_adjusted_keys(factor, keys, scale=self.scale)
        else:
            fkey = (ckey, self.weight, self.preserved.version, str(device))
            factor = self._factors.get(fkey)
            if factor is None:
                a = self.weight * moment.to(device=device, dtype=torch.float64) + gram.to(device)
                factor = self._factors[fkey] = ridged_cholesky(a)
        return solve_adjusted_keys(factor, keys)

    def _projected(self, layer, moment, keys, gram, ckey) -> torch.Tensor:
        device = keys.device
        p = self.stats.null_projector(moment, self.hp.nullspace, key=ckey, device=device)
        k = keys.to(torch.float64)
        d = k.shape[0]
        ridge = self.hp.nullspace_ridge * self.scale * float(torch.diagonal(moment).sum()) / d
        m = k @ (k.T @ p)
        if gram is not None:
            m = m + gram.to(device) @ p
        m.diagonal().add_(ridge)
        # ΔW = R Kᵀ P M⁻¹ = R (M⁻ᵀ P K)ᵀ
        return torch.linalg.solve(m.T, p @ k)
