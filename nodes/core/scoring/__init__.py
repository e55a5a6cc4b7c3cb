"""Best-of-N: scoring variations and selecting the best.

Plain Python over torch tensors in ComfyUI's IMAGE layout ([B, H, W, C], float 0..1); no
ComfyUI import. ``technical`` needs no model and is the offline default.
"""
