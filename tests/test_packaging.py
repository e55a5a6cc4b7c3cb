"""The pack is installable into ComfyUI and importable without it."""

from __future__ import annotations

import ast
import asyncio
import re
import sys
from pathlib import Path

import atelier
import tomllib

REPO = Path(__file__).resolve().parents[1]


def _requirement_names(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            name = re.split(r"[<>=!~ \[]", line, maxsplit=1)[0].lower()
            out[name] = line.replace(" ", "")
    return out


def test_requirements_txt_matches_pyproject_dependencies() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = _requirement_names(project["dependencies"] + project["optional-dependencies"]["scorers"])
    listed = _requirement_names((REPO / "requirements.txt").read_text().splitlines())
    assert listed == declared
    assert "torch" not in declared, "ComfyUI brings torch; a bare requirement lets pip replace it"


def test_pyproject_has_comfy_registry_metadata() -> None:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    comfy = data["tool"]["comfy"]
    assert comfy["PublisherId"] and comfy["DisplayName"] == "Atelier"
    assert comfy["requires-comfyui"] == ">=0.3.64"
    assert "pytest" in " ".join(data["project"]["optional-dependencies"]["test"])


def test_pack_imports_without_comfyui_and_uses_v3_entrypoint() -> None:
    assert "comfy_api" not in sys.modules and "server" not in sys.modules
    assert atelier.WEB_DIRECTORY == "./web" and (REPO / "web").is_dir()
    assert asyncio.iscoroutinefunction(atelier.comfy_entrypoint)
    # ComfyUI ignores comfy_entrypoint when NODE_CLASS_MAPPINGS exists.
    assert not hasattr(atelier, "NODE_CLASS_MAPPINGS")


def test_layout_of_the_design_card() -> None:
    for name in ("nodes", "web", "workflows", "presets", "tests", "__init__.py", "pyproject.toml", "README.md"):
        assert (REPO / name).exists(), name


def test_no_eval_or_exec_in_pack_code() -> None:
    for path in REPO.rglob("*.py"):
        if ".venv" in path.parts or "tests" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in ("eval", "exec"), path


def test_web_code_uses_only_the_public_frontend_api() -> None:
    """ComfyUI extensions import only scripts/app.js and scripts/api.js (never the deprecated scripts/ui.js);
    the panel's views (web/js/panel/) import nothing of ComfyUI, so the standalone page can load them."""
    import re

    imports = 0
    for path in (REPO / "web").rglob("*.js"):
        text = path.read_text(encoding="utf-8")
        comfy = set(re.findall(r"""from\s+["'](?:\.\./)+scripts/([\w/]+\.js)["']""", text))
        imports += len(comfy)
        if path.parent.name == "panel":
            assert comfy == set(), (path, comfy)
        else:
            assert comfy <= {"app.js", "api.js"}, (path, comfy)
    assert imports >= 5  # the pattern does find the extensions' imports
