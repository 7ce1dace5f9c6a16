"""Evaluation on the paper's benchmarks: EK-100 MIR, EgoMCQ and Charades-Ego.

One module per benchmark (its reader and task), on top of shared encoding (`encoding`), a feature cache (`cache`),
the metrics as numpy functions (`metrics`, wrapped as `evaluate` modules in `evaluate_modules/`) and the results
type (`results`). `examples/eval_*.py` are thin command lines over this package (`cli`).
"""
