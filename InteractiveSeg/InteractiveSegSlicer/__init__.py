"""Qt-free Slicer glue of the InteractiveSeg module.

Everything here runs both inside the Slicer application and in a plain Python
process with the ``slicer-core`` wheel (``trame_slicer.core.SlicerApp`` sets up the
scene), so it is tested without the Slicer GUI and without mocking MRML:

- ``mrml_glue``: volume node <-> ``Volume``, markups -> clicks, one segment per class,
  writing only the changed extent into a segmentation node, and the per-volume
  session store that the module's Logic uses.
- ``growcut_engine``: Slicer's "Grow from seeds" (``vtkImageGrowCutSegment``) as a
  baseline engine, registered through the ``interactiveseg.engines`` entry point.

Submodules are not imported here so that importing the package stays cheap.
"""

__all__ = ["mrml_glue", "growcut_engine"]
