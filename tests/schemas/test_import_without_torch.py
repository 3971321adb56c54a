"""The stored documents (pccd_flows.schemas) load where torch is not installed: a store reader, a report, a builder."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pccd_flows.schemas

REPO = Path(__file__).resolve().parents[2]

# a fresh interpreter in which any `import torch` (or torch.*) fails as if torch were not installed
BLOCK_TORCH = textwrap.dedent("""
    import importlib
    import sys

    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
            return None

    sys.meta_path.insert(0, NoTorch())
    for name in sys.argv[1:]:
        importlib.import_module(name)
    assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules), "torch was loaded"
    print("imported", len(sys.argv) - 1, "modules without torch")
""")


def schema_modules() -> list[str]:
    names = [info.name for info in pkgutil.walk_packages(pccd_flows.schemas.__path__, "pccd_flows.schemas.")]
    return ["pccd_flows.schemas", *sorted(names)]


def test_every_schema_module_imports_without_torch():
    modules = schema_modules()
    assert {"pccd_flows.schemas.candidate", "pccd_flows.schemas.followup", "pccd_flows.schemas.provenance"} <= set(
        modules)
    result = subprocess.run([sys.executable, "-c", BLOCK_TORCH, *modules], cwd=REPO, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"imported {len(modules)} modules without torch" in result.stdout


def test_the_old_import_paths_give_the_same_classes():
    from pccd_flows.model import conditions, generate
    from pccd_flows.schemas import provenance

    for name in ("Provenance", "SamplerSettings", "GenerationConditions", "GeneratedCrystal"):
        assert getattr(generate, name) is getattr(provenance, name)
    for name in ("BandGapClass", "MagneticClass", "MAX_Z"):
        assert getattr(conditions, name) is getattr(provenance, name)
