"""Virtual users: the benchmark robot (``robot``) and the SIM engine's multi-class users (``multiclass``)."""
