"""InteractiveSegLib: the Slicer-free engine of the InteractiveSeg extension."""

__version__ = "0.1.0"
