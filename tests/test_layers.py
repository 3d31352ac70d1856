"""The package's import graph runs one way (docs/architecture.md): a module imports only from its own layer or
below, never a private name of another module, and no two modules import each other in a cycle. Function-local
imports count: an upward import inside a function is still an upward dependency."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import vla_sdk

PACKAGE = Path(vla_sdk.__file__).parent

# Layers, bottom to top; a module belongs to the first layer with a prefix that matches its dotted name.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "core",
        (
            "vla_sdk",  # the package itself (__init__: the version only)
            "vla_sdk.errors",
            "vla_sdk.jsonfile",
            "vla_sdk.schema",
            "vla_sdk.registry",
            "vla_sdk.assets",
            "vla_sdk.compile_cache",
            "vla_sdk.embodiment",
            "vla_sdk.video",
            "vla_sdk.interrupt",
            "vla_sdk.checkpoint",
            "vla_sdk.bases",  # the shipped base policies (their folders and cards)
            "vla_sdk.multi_robot",
            "vla_sdk.model.config",
            "vla_sdk.model.tokenizer",
            "vla_sdk.transforms",
            "vla_sdk.protocols",
            "vla_sdk.episode",
        ),
    ),
    ("sim", ("vla_sdk.sim",)),
    ("data", ("vla_sdk.data",)),
    ("model", ("vla_sdk.model",)),
    ("train", ("vla_sdk.train",)),
    (
        "deploy",
        (
            "vla_sdk.robot",
            "vla_sdk.robots",  # hardware drivers and their emulators (Dynamixel ALOHA 2)
            "vla_sdk.policy",
            "vla_sdk.runner",
            "vla_sdk.envmap",
            "vla_sdk.evaluation",
            "vla_sdk.eval_config",
            "vla_sdk.live",
            "vla_sdk.export",
            "vla_sdk.serving",
            "vla_sdk.serve",
            "vla_sdk.doctor",
        ),
    ),
    ("workflow", ("vla_sdk.demo_curve",)),  # drives the trainer and the evaluator together
    ("cli", ("vla_sdk.cli", "vla_sdk.commands")),
]
# Layers that must not be imported even from above: inference (policy, export, serving) never reaches into the trainer.
NEVER = {"deploy": ("train",)}
# The flax-free core: importing these must not import flax, optax or mujoco (the export runtime runs on them).
CORE_FORBIDDEN = ("flax", "optax", "mujoco")


def _layer(module: str) -> int:
    best, depth = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and p.count(".") > depth:
                best, depth = i, p.count(".")
    assert best is not None, f"{module} is in no layer: add it to LAYERS in {__file__}"
    return best


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(module: str, path: Path) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every vla_sdk import in the file, wherever it sits."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, None, node.lineno) for a in node.names if a.name.split(".")[0] == "vla_sdk"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            if base.split(".")[0] != "vla_sdk":  # (relative imports are resolved against the package above)
                continue
            for a in node.names:
                found.append((base, a.name, node.lineno))
    return found


def _resolve(target: str, name: str | None, modules: dict) -> str:
    """`from pkg import sub` imports the module pkg.sub when there is one."""
    if name and f"{target}.{name}" in modules:
        return f"{target}.{name}"
    return target


def test_imports_point_down_and_never_at_private_names():
    modules = _modules()
    problems = []
    for mod, path in sorted(modules.items()):
        for target, name, line in _imports(mod, path):
            dep = _resolve(target, name, modules)
            if dep not in modules:
                problems.append(f"{path.name}:{line}: {mod} imports {dep}, which does not exist")
                continue
            if _layer(dep) > _layer(mod):
                problems.append(
                    f"{mod} (layer {LAYERS[_layer(mod)][0]}) imports {dep} (layer {LAYERS[_layer(dep)][0]}) at "
                    f"line {line}: an upward import"
                )
            if LAYERS[_layer(dep)][0] in NEVER.get(LAYERS[_layer(mod)][0], ()):
                problems.append(
                    f"{mod} imports {dep} at line {line}: layer {LAYERS[_layer(mod)][0]} never imports "
                    f"layer {LAYERS[_layer(dep)][0]}"
                )
            private = name and name.startswith("_") and not name.startswith("__")
            if private and dep == target and target != mod:
                problems.append(f"{mod} imports the private name {target}.{name} at line {line}")
    assert not problems, "\n".join(problems)


def test_no_import_cycles():
    modules = _modules()
    graph = {m: set() for m in modules}
    for mod, path in modules.items():
        for target, name, _ in _imports(mod, path):
            dep = _resolve(target, name, modules)
            # a package's __init__ importing its own submodules, and a submodule importing its parent package's
            # __init__ for a sibling name, are not cycles between modules
            if dep in modules and dep != mod and not dep.startswith(mod + ".") and not mod.startswith(dep + "."):
                graph[mod].add(dep)
    cycles, index, low, stack, on, counter = [], {}, {}, [], set(), [0]

    def strongconnect(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            strongconnect(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_core_imports_no_flax_optax_or_mujoco():
    modules = [m for m in _modules() if _layer(m) == 0]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted(k for k in {CORE_FORBIDDEN!r} if k in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_checker_finds_an_upward_import_and_a_private_name(tmp_path, monkeypatch):
    """The walk itself can fail: a core module that imports the trainer, or another module's private name."""
    bad = PACKAGE / "embodiment.py"
    fake = tmp_path / "embodiment.py"
    fake.write_text(bad.read_text() + "\nfrom vla_sdk.train.loop import train\nfrom vla_sdk.registry import _x\n")
    real = _modules()
    monkeypatch.setattr(sys.modules[__name__], "_modules", lambda: {**real, "vla_sdk.embodiment": fake})
    try:
        test_imports_point_down_and_never_at_private_names()
    except AssertionError as e:
        assert "vla_sdk.embodiment (layer core) imports vla_sdk.train.loop (layer train)" in str(e)
        assert "private name vla_sdk.registry._x" in str(e)
    else:
        raise AssertionError("the layer check passed a core module that imports the trainer")
