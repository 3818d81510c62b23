"""click."""
