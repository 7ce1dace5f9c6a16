"""Small helpers shared by the data, training, evaluation and conversion layers (no model code)."""
