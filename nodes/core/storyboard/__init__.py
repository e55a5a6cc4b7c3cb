"""Storyboards: clips of start/end frames chained from a reference and the previous frame (no ComfyUI import)."""
