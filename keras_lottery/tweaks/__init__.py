"""Sparse-retraining tweaks (Jaiswal et al., 2021): one module per tweak; see docs/tweaks.md."""
