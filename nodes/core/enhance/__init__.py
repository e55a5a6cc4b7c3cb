"""Prompt enhancement: a writer/critic loop with an offline rule backend and LLM backends.

Plain Python (asyncio + aiohttp for HTTP backends); no ComfyUI import.
"""
