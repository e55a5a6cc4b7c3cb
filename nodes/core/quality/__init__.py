"""Quality presets: tiers, model families, template application, custom presets with
inheritance, pipelines, estimates with calibration, recommendations and comparison.

Plain Python: nothing here imports ComfyUI.
"""

from .service import QualityService

__all__ = ["QualityService"]
