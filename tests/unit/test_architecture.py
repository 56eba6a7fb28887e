"""Who may import whom, for every import of the four packages (inside functions too).

ledger/ is pure: the standard library and itself. db/ stores the ledger: ledger/ and
the shared settings and logs, no api/ or worker/. worker/ applies commands: ledger/
and db/. api/ takes commands: ledger/ and db/, and worker/ only to ring doorbells,
subscribe to outcomes, enqueue a callback delivery and read the names of the queues
and keys the workers use: the names listed in API_MAY_USE_OF_WORKER, nothing else.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ledger", "db", "api", "worker")
# The project's own top-level modules and packages: anything else is the standard
# library or a third-party library.
PROJECT = {
    p.stem if p.is_file() else p.name
    for p in ROOT.iterdir()
    if (p.suffix == ".py" and p.stem.isidentifier())
    or (p.is_dir() and p.name.isidentifier() and any(p.glob("*.py")))
}
SHARED = {"settings", "logs", "telemetry", "resources"}
MAY_IMPORT = {
    "ledger": {"ledger"},
    "db": {"db", "ledger", "settings", "logs", "resources"},
    "worker": {"worker", "ledger", "db", *SHARED},
    "api": {"api", "ledger", "db", *SHARED},
}
# What api/ takes from worker/, name by name ("*": the module itself).
API_MAY_USE_OF_WORKER = {
    "worker.doorbell": {"*", "redis_client"},  # ring partitions; the shared Redis client
    "worker.notify": {"channel"},  # the channel a long poll subscribes to
    "worker.connections": {"connect_redis"},  # the long polls' own Redis client
    "worker.tasks": {"deliver_callback"},  # enqueue an operator's redelivery
    "worker.routing": {"queue_name", "partition_queues"},  # queue depths to report
    "worker.consumers": {"census"},  # which workers consume which queues
    "worker.observe": {"RECONCILIATION_KEY"},  # where the reconciliation verdict is
}


def imports(source: str, module: str) -> list[tuple[str, str]]:
    """(module, name) for each import in `source`, the source of `module`: name "*" for
    the module itself, as in `import worker.doorbell` or `from worker import doorbell`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, "*") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing module's package
                parent = module.split(".")[: -node.level]
                base = ".".join([*parent, *([base] if base else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if _is_module(submodule):
                    found.append((submodule, "*"))
                else:
                    found.append((base, alias.name))
    return found


def _is_module(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def violations(package: str, source: str, module: str) -> list[str]:
    """The imports in `source` (of `module`, in `package`) that break the rules."""
    refused = []
    for imported, name in imports(source, module):
        top = imported.split(".")[0]
        if top in sys.stdlib_module_names:
            continue
        if top not in PROJECT:  # a third-party library
            if package == "ledger":
                refused.append(imported)
            continue
        if top in MAY_IMPORT[package]:
            continue
        if package == "api" and name in API_MAY_USE_OF_WORKER.get(imported, set()):
            continue
        refused.append(imported if name == "*" else f"{imported}.{name}")
    return refused


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


@pytest.mark.parametrize(
    ("package", "path"),
    [
        pytest.param(package, path, id=str(path.relative_to(ROOT)))
        for package in PACKAGES
        for path in _modules(package)
    ],
)
def test_each_module_imports_only_what_its_package_may(package, path):
    refused = violations(package, path.read_text(), _module_name(path))
    assert not refused, f"{path.relative_to(ROOT)} imports {refused}"


def test_every_package_has_modules_to_check():
    assert all(_modules(package) for package in PACKAGES)
    assert set(PACKAGES) | SHARED <= PROJECT


def test_api_uses_every_worker_name_it_is_allowed():
    """An allowance api/ no longer needs is removed, so the list stays exact."""
    used = {
        (imported, name)
        for path in _modules("api")
        for imported, name in imports(path.read_text(), _module_name(path))
        if imported.startswith("worker")
    }
    allowed = {(module, name) for module, names in API_MAY_USE_OF_WORKER.items() for name in names}
    assert used == allowed


@pytest.mark.parametrize(
    ("package", "source", "refused"),
    [
        ("ledger", "import sqlalchemy\nfrom ledger import accounts\n", ["sqlalchemy"]),
        ("ledger", "def f():\n    from db import engine\n", ["db.engine"]),
        ("db", "from api.errors import ApiError\n", ["api.errors.ApiError"]),
        ("db", "import worker.doorbell\nimport sqlalchemy\n", ["worker.doorbell"]),
        ("worker", "from api import intake\n", ["api.intake"]),
        ("api", "from worker import doorbell\nfrom worker.notify import channel\n", []),
        ("api", "from worker.drain import drain\n", ["worker.drain.drain"]),
        ("api", "def f():\n    from worker.tasks import sweep\n", ["worker.tasks.sweep"]),
        ("api", "import worker.tasks\n", ["worker.tasks"]),
        ("api", "from worker import app\n", ["worker.app"]),
    ],
)
def test_the_checker_refuses_what_the_rules_forbid(package, source, refused):
    assert violations(package, source, f"{package}.sample") == refused


def test_a_relative_import_is_resolved_against_its_package():
    assert imports("from ..worker import drain\n", "api.sub.sample") == [("api.worker", "drain")]
    assert imports("from . import reads\n", "db.sample") == [("db.reads", "*")]
