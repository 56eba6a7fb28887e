"""ledger/ is pure: it imports the standard library and itself, nothing else."""

import ast
import sys
from pathlib import Path

import pytest

LEDGER = Path(__file__).resolve().parents[2] / "ledger"


@pytest.mark.parametrize("path", sorted(LEDGER.glob("*.py")), ids=lambda p: p.name)
def test_ledger_imports_only_the_standard_library(path):
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
    outside = {m for m in imported if m not in sys.stdlib_module_names and m != "ledger"}
    assert not outside, f"{path.name} imports {outside}"


def test_the_checker_would_catch_a_third_party_import(tmp_path):
    sample = "import sqlalchemy\nfrom ledger import x\n"
    tree = ast.parse(sample)
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "sqlalchemy" not in sys.stdlib_module_names and "sqlalchemy" in names
