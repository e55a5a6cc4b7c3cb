"""Social context: relationship state -> intimacy band -> content rating, clamped by world and user maxima.

Plain Python; no ComfyUI import.
"""
