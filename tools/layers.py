"""Atelier's layers, read from the code: which folder imports which, checked against the import rule.

    python tools/layers.py          # the picture, floor by floor, and any import that breaks the rule

The rule (ARCHITECTURE.md):

    core/<capability>   plain Python; imports only core (never ComfyUI, aiohttp or an adapter)
    remote, server,     adapters that core never sees; import core (remote: clients of ComfyUI and LLM servers,
    engines, queue      server: the HTTP routes, engines: generation engines such as diffusers, queue: the job
                        queue of scale-out workers, on Procrastinate)
    host                the composition: settings and the one context; imports core, remote, server
    comfy, cli, api     the hosts' entry points: ComfyUI's nodes and runtime, the command line, the Python API;
                        import core and host, never each other or an adapter
    __init__, __main__, ComfyUI's entry (comfy), ``python -m atelier`` (cli) and ``atelier.api`` (api)
    api

Every import counts, those inside functions and under TYPE_CHECKING too. Capabilities import each other
without a cycle.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "atelier"
ALLOWED = {
    "core": {"core"},
    "remote": {"core", "remote"},
    "server": {"core", "server"},
    "engines": {"core", "engines"},
    "queue": {"core", "queue"},
    "host": {"core", "remote", "server", "engines", "queue", "host"},
    "comfy": {"core", "host", "comfy"},
    "cli": {"core", "host", "cli"},
    "api": {"core", "host", "api"},
}
ENTRY = {"__init__.py": "comfy", "__main__.py": "cli", "api.py": "api"}
COMFYUI = {"comfy", "comfy_api", "comfy_execution", "server", "folder_paths", "nodes", "execution"}
THIRD_PARTY_ALLOWED = {  # outside libraries a layer may import (others: any)
    "core": lambda name: name not in COMFYUI and name != "aiohttp",
    "remote": lambda name: name not in COMFYUI,
    "server": lambda name: name not in COMFYUI,
    "host": lambda name: name not in COMFYUI,
    "cli": lambda name: name not in COMFYUI,
    "api": lambda name: name not in COMFYUI,
    "engines": lambda name: name not in COMFYUI,
    "queue": lambda name: name not in COMFYUI and name != "aiohttp",
    "comfy": lambda name: True,
}
FLOORS = (("entry", ("__init__.py", "__main__.py", "api.py")), ("hosts", ("comfy", "cli", "api")),
          ("composition", ("host",)), ("adapters", ("server", "remote", "engines", "queue")), ("core", ("core",)))


def module_name(path: Path, root: Path = REPO) -> str:
    """``nodes/core/quality/plan.py`` -> ``atelier.nodes.core.quality.plan``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([PACKAGE, *parts])


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imports(path: Path, root: Path = REPO) -> list[tuple[str, int]]:
    """Every module ``path`` imports (absolute names; Atelier's own as ``atelier.…``), with the line."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = module_name(path, root).split(".")
    package = here if is_package(path) else here[:-1]
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package, one level up per extra dot
                base = package[: len(package) - node.level + 1]
                if node.module:
                    found.append((".".join([*base, node.module]), node.lineno))
                else:  # from . import runtime
                    found += [(".".join([*base, alias.name]), node.lineno) for alias in node.names]
            elif node.module:
                found.append((node.module, node.lineno))
    return found


def layer(module: str) -> str:
    """The layer of one of Atelier's modules: ``core``, ``host``, … (the folder under nodes/)."""
    parts = module.split(".")
    if len(parts) == 1:
        return ENTRY["__init__.py"]
    if parts[1] in ("__main__", "api"):
        return ENTRY[f"{parts[1]}.py"]
    return parts[2] if len(parts) > 2 and parts[1] == "nodes" else "nodes"


def unit(module: str) -> str:
    """The unit of the capability picture: ``core.<capability>`` inside core, else the layer."""
    parts = module.split(".")
    if layer(module) == "core":
        return f"core.{parts[3]}" if len(parts) > 3 else "core"
    return layer(module)


def sources(root: Path = REPO) -> list[Path]:
    files = sorted((root / "nodes").rglob("*.py"))
    entry = [root / name for name in ENTRY if (root / name).exists()]
    return [*entry, *[f for f in files if "migrations" not in f.parts]]


def check(root: Path = REPO) -> tuple[list[str], dict[str, set[str]]]:
    """(every broken rule, the unit-level import graph) of the checkout at ``root``."""
    problems: list[str] = []
    graph: dict[str, set[str]] = defaultdict(set)
    for path in sources(root):
        me = module_name(path, root)
        mine = layer(me)
        for target, line in imports(path, root):
            where = f"{path.relative_to(root)}:{line}"
            if target == PACKAGE or target.startswith(f"{PACKAGE}."):
                theirs = layer(target)
                if target.startswith(f"{PACKAGE}.nodes") and target.count(".") < 2:
                    continue  # the nodes package itself
                if mine in ALLOWED and theirs not in ALLOWED[mine]:
                    problems.append(f"{where}: {mine} imports {theirs} ({target})")
                if unit(target) != unit(me):
                    graph[unit(me)].add(unit(target))
            elif mine in THIRD_PARTY_ALLOWED and not THIRD_PARTY_ALLOWED[mine](target.split(".")[0]):
                problems.append(f"{where}: {mine} imports {target.split('.')[0]}")
    problems += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]
    return problems, graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append([*path[path.index(nxt):], nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def depth(graph: dict[str, set[str]], node: str, seen: frozenset[str] = frozenset()) -> int:
    """How many floors of Atelier's own code lie below ``node`` (0: it imports none)."""
    below = [d for d in graph.get(node, ()) if d not in seen]
    return 1 + max(depth(graph, d, seen | {node}) for d in below) if below else 0


def picture(graph: dict[str, set[str]]) -> str:
    """Floor by floor, top down: entry points, hosts, composition, adapters, then core by depth."""
    members = sorted(set(graph) | {t for targets in graph.values() for t in targets})
    lines = ["entry        __init__.py -> comfy, __main__.py -> cli, api.py -> api"]
    for floor, units in FLOORS[1:-1]:
        for u in (m for m in members if m in units):
            lines.append(f"{floor:<12} {u:<16} -> {', '.join(sorted(graph.get(u, ())))}")
    core = sorted((m for m in members if m.startswith("core")), key=lambda m: (-depth(graph, m), m))
    for u in core:
        lines.append(f"{'core ' + str(depth(graph, u)):<12} {u:<16} -> "
                     f"{', '.join(sorted(graph.get(u, ()))) or '(nothing of Atelier)'}")
    return "\n".join(lines)


def main() -> int:
    problems, graph = check()
    print(picture(graph))
    for problem in problems:
        print(f"broken: {problem}", file=sys.stderr)
    print(f"\n{len(sources())} modules; {len(problems)} broken import(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
