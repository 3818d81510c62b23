"""The "InteractiveSeg" Segment Editor effect (registered by the InteractiveSeg module at start-up)."""
