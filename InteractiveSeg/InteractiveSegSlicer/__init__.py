"""Qt-free Slicer glue of the InteractiveSeg module.

Everything here runs both inside the Slicer application and in a plain Python
process with the ``slicer-core`` wheel (``trame_slicer.core.SlicerApp`` sets up the
scene), so it is tested without the Slicer GUI and without mocking MRML:

- ``geometry``: volume node <-> ``Volume``, world RAS <-> IJK, which array axis a view
  shows; ``segment_io``: one segment per class, labelmap <-> segments, writing only the
  changed extent into a segmentation node; ``session_store``: the per-volume session
  store that the module's Logic uses.
- ``growcut_engine``: Slicer's "Grow from seeds" (``vtkImageGrowCutSegment``) as a
  baseline engine, registered through the ``interactiveseg.engines`` entry point.
- ``editor_writer``: results written through the Segment Editor's logic (masking,
  overwrite, undo states); ``worker``: the one persistent inference thread;
  ``slice_hints``: gestures in slice views and markups point lists -> hints;
  ``slice_views``: a suggested or proposed slice highlighted and shown in the views;
  ``online_glue``: online learning (a task folder, a volume and a segment bound to the
  library's learner); ``logic``: the module's scriptable logic (batch ``segment``,
  ``propagate``); ``engine_info``: model cards, device;
  ``dependencies``: which required packages are missing; ``latency_bench``: the
  hint -> segment latency benchmark (``python -m InteractiveSegSlicer.latency_bench``).

Submodules are not imported here so that importing the package stays cheap.
"""

__all__ = [
    "controller",
    "dependencies",
    "editor_writer",
    "engine_info",
    "geometry",
    "growcut_engine",
    "latency_bench",
    "logic",
    "online_glue",
    "segment_io",
    "session_store",
    "slice_hints",
    "slice_views",
    "worker",
]
