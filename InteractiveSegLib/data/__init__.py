"""Labelled volumes (``datasets``) and multi-class tasks (``multiclass_tasks``) for training and benchmarks."""
