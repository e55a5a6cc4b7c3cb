"""Every Atelier node in one table: id -> class -> display name (the class's schema says the same)."""

from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from .enhance import PromptEnhance
from .intelligence import LoraRecommend, SaveWithExplanation, SmartPlan
from .quality import QualityPreset, QualitySampler, QualityStage
from .records import RecordGeneration
from .scoring import RankSelect, ScorerModels, VariationScore
from .social import SocialContext
from .storyboard import (
    ChainImage,
    FrameChain,
    FrameSelect,
    FrameStart,
    StoryboardCollect,
    StoryboardSave,
    TierGrid,
)

CATALOGUE: tuple[tuple[str, type[io.ComfyNode], str], ...] = (
    ("AtelierQualityPreset", QualityPreset, "Quality Preset"),
    ("AtelierQualityStage", QualityStage, "Quality Stage"),
    ("AtelierQualitySampler", QualitySampler, "Quality Sampler"),
    ("AtelierVariationScore", VariationScore, "Variation Score"),
    ("AtelierRankSelect", RankSelect, "Rank Select"),
    ("AtelierScorerModels", ScorerModels, "Scorer Models"),
    ("AtelierPromptEnhance", PromptEnhance, "Prompt Enhance"),
    ("AtelierSocialContext", SocialContext, "Social Context"),
    ("AtelierRecordGeneration", RecordGeneration, "Record Generation"),
    ("AtelierFrameChain", FrameChain, "Frame Chain (storyboard)"),
    ("AtelierFrameStart", FrameStart, "Frame Start"),
    ("AtelierFrameSelect", FrameSelect, "Frame Select"),
    ("AtelierChainImage", ChainImage, "Chain Image"),
    ("AtelierStoryboardCollect", StoryboardCollect, "Storyboard Collect"),
    ("AtelierStoryboardSave", StoryboardSave, "Storyboard Save"),
    ("AtelierTierGrid", TierGrid, "Tier Comparison Grid"),
    ("AtelierSmartPlan", SmartPlan, "Smart Plan"),
    ("AtelierLoraRecommend", LoraRecommend, "LoRA Recommend"),
    ("AtelierSaveWithExplanation", SaveWithExplanation, "Save With Explanation"),
)


class AtelierExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [cls for _, cls, _ in CATALOGUE]
