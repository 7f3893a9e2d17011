"""The arrows of ../shared/spec/house.md, read from the imports so that they cannot rot.

    cli -> bootstrap -> {api, web, gateway, ...} -> services -> {store, wire} -> domain
                                                             -> {context, crypto, errors, settings}
    gateway, federation -> client (never services, store or bootstrap)
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "huren"
GROUND = ("huren.context", "huren.crypto", "huren.errors", "huren.files")


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(p): p for p in ROOT.rglob("*.py") if "migrations" not in p.parts and "__pycache__" not in p.parts
    }


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The huren module an imported name lands in (``huren.wire.gm`` -> itself; a package's attribute -> the package)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(module: str, *, top_level_only: bool) -> set[str]:
    """The huren modules ``module`` imports (at run time; TYPE_CHECKING blocks left out)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(nodes: list[ast.stmt], nested: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node):
                visit(node.orelse, nested)
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("huren"):
                        target = _resolve(alias.name)
                        if target:
                            found.add(target)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    mod = ".".join([*base, node.module] if node.module else base)
                else:
                    mod = node.module or ""
                if mod.startswith("huren"):
                    for alias in node.names:
                        target = _resolve(f"{mod}.{alias.name}")
                        if target:
                            found.add(target)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if not top_level_only:
                    visit(node.body, True)
                continue
            for field in ("body", "orelse", "finalbody", "handlers"):
                children = getattr(node, field, None)
                if isinstance(children, list) and children and isinstance(children[0], ast.stmt | ast.excepthandler):
                    visit([c for c in children if isinstance(c, ast.stmt)], nested)
                    for h in children:
                        if isinstance(h, ast.excepthandler):
                            visit(h.body, nested)

    visit(tree.body, False)
    found.discard(module)
    return found


def _under(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_no_import_cycle() -> None:
    graph = {m: imports(m, top_level_only=True) for m in MODULES}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def walk(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            # a package importing its own submodule (re-export) is not a cycle of concepts
            if n.startswith(m + "."):
                continue
            if state.get(n) == 1:
                cycles.append([*stack[stack.index(n):], n])
            elif n not in state:
                walk(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            walk(m)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_transports_never_import_bootstrap() -> None:
    offenders = {
        m: sorted(n for n in imports(m, top_level_only=False) if n == "huren.bootstrap")
        for m in MODULES
        if _under(m, "huren.api", "huren.web", "huren.gateway", "huren.federation", "huren.services", "huren.store", "huren.wire", "huren.domain")
    }
    assert not {m: v for m, v in offenders.items() if v}


def test_domain_imports_only_the_ground_floor() -> None:
    bad = {}
    for m in MODULES:
        if _under(m, "huren.domain"):
            wrong = sorted(n for n in imports(m, top_level_only=False) if not _under(n, "huren.domain", *GROUND))
            if wrong:
                bad[m] = wrong
    assert not bad, bad


def test_ground_floor_imports_nothing_above_it() -> None:
    bad = {}
    for m in MODULES:
        if _under(m, *GROUND):
            wrong = sorted(n for n in imports(m, top_level_only=False) if not _under(n, *GROUND))
            if wrong:
                bad[m] = wrong
    assert not bad, bad


def test_nothing_below_services_knows_a_transport() -> None:
    transports = ("huren.api", "huren.web", "huren.gateway", "huren.federation", "huren.cli", "huren.bootstrap", "huren.demo")
    bad = {}
    for m in MODULES:
        if _under(m, "huren.services", "huren.store", "huren.wire", "huren.domain", *GROUND):
            wrong = sorted(n for n in imports(m, top_level_only=False) if _under(n, *transports))
            if wrong:
                bad[m] = wrong
    assert not bad, bad


def test_store_and_wire_never_import_services() -> None:
    bad = {}
    for m in MODULES:
        if _under(m, "huren.store", "huren.wire"):
            wrong = sorted(n for n in imports(m, top_level_only=False) if _under(n, "huren.services"))
            if wrong:
                bad[m] = wrong
    assert not bad, bad


GATEWAY_MODULES = sorted(m for m in MODULES if _under(m, "huren.gateway"))


# the doctor's pages the gateway serves from its preload cache (mounted on its local API)
GATEWAY_PAGES = ["huren.web", "huren.web.routes_doctor", "huren.web.routes_report", "huren.web.render", "huren.web.backend"]


@pytest.mark.parametrize("module", ["huren.gateway", *GATEWAY_MODULES, *GATEWAY_PAGES])
def test_importing_the_gateway_loads_no_platform_module(module: str) -> None:
    """A front-end machine runs the gateway alone: none of the platform's services, store or bootstrap,
    also when it serves the doctor's pages."""
    code = (
        "import importlib, sys; importlib.import_module(sys.argv[1]); "
        "print(' '.join(sorted(m for m in sys.modules "
        "if m.startswith(('huren.services', 'huren.store', 'huren.bootstrap')))))"
    )
    out = subprocess.run([sys.executable, "-c", code, module], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [], out.stdout


FEDERATION_MODULES = sorted(m for m in MODULES if _under(m, "huren.federation"))


@pytest.mark.parametrize("module", ["huren.federation", *FEDERATION_MODULES, "huren.cli.federation"])
def test_the_upstream_runner_loads_no_platform_module(module: str) -> None:
    """``huren federation run`` talks to both platforms through huren.client only (issue 13): none of
    the platform's services, store or bootstrap is loaded, nor the gateway's."""
    code = (
        "import importlib, sys; importlib.import_module(sys.argv[1]); "
        "print(' '.join(sorted(m for m in sys.modules "
        "if m.startswith(('huren.services', 'huren.store', 'huren.bootstrap', 'huren.gateway')))))"
    )
    out = subprocess.run([sys.executable, "-c", code, module], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [], out.stdout
