"""Training configuration: TOML recipes with strict keys and `--set section.key=value` overrides.

A recipe has the sections below; every key is optional (defaults in the dataclasses). A key that
does not exist is an error naming it, so a typo never silently trains with a default.

    [model]  preset = "shakespeare-char", plus any lmforge.model.ModelConfig field as an override
    [data]   where the tokens come from (a raw text file, or a `lmforge data prepare` directory)
    [optim]  AdamW and the learning-rate schedule
    [train]  the objective, steps, batch, precision, compile, logging, checkpoints
    [eval]   periodic validation and samples
    [dist]   data-parallel strategy when launched under torchrun
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from lmforge.errors import LmforgeError


@dataclass
class ModelSection:
    preset: str | None = "shakespeare-char"
    overrides: dict[str, Any] = field(default_factory=dict)  # any ModelConfig field


@dataclass
class DataSection:
    # Either `path` (raw text/jsonl/parquet files, prepared into OUT/data at start) or `dir`
    # (an existing `lmforge data prepare` output). Relative paths are relative to the repository
    # root when they exist there (recipes), else to the current directory.
    path: str | list[str] | None = None
    dir: str | None = None
    tokenizer: str = "char"  # "char", "bpe" (train our BPE on the same text), or a tokenizer path
    bpe_vocab_size: int = 1024
    bpe_pattern: str = "gpt4"
    val_fraction: float = 0.1
    sampling: str = "random"  # "random" windows (nanoGPT) | "sequential"
    order: str = "shuffle"  # sequential only: shuffle | length (curriculum, short to long) | corpus
    doc_mask: bool = False  # positions restart and attention stops at document boundaries
    text_field: str = "text"


@dataclass
class OptimSection:
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    lr_decay_iters: int | None = None  # None = max_iters
    weight_decay: float = 0.1  # matrices only; norms, biases and embeddings... see build_optimizer
    beta1: float = 0.9
    beta2: float = 0.99
    eps: float = 1e-8
    grad_clip: float = 1.0  # 0 = off
    fused: bool = True  # fused AdamW kernel where available


@dataclass
class TrainSection:
    objective: str = "pretrain"  # what the loop minimises: a name in lmforge.train.objectives
    seed: int = 1337
    max_iters: int = 2000
    batch_size: int = 12  # global rows per optimizer step (all ranks and micro-steps)
    grad_accum: int = 1  # micro-steps per optimizer step
    block_size: int = 64
    dtype: str = "auto"  # autocast precision: auto | fp32 | bf16 | fp16 (lmforge.assets)
    compile: bool = False
    device: str = "auto"  # auto | cpu | cuda
    num_threads: int = 0  # torch threads; 0 = leave as is
    log_interval: int = 10
    checkpoint_interval: int = 0  # 0 = only at the end (and on eval steps when > 0)
    resume: bool = True  # continue from OUT/checkpoint when it exists
    progress: bool = True
    peak_flops: float = 0.0  # for MFU; 0 = measure this device's dense matmul rate at start
    save_pretrained: bool = True  # export OUT/model (lmforge.checkpoint) at the end


@dataclass
class EvalSection:
    interval: int = 250  # 0 = only at the end
    iters: int = 20  # validation batches per evaluation
    batch_size: int = 0  # 0 = train.batch_size
    sample_tokens: int = 200  # 0 = no samples
    sample_prompt: str = "\n"
    temperature: float = 0.8
    top_k: int = 200


@dataclass
class DistSection:
    strategy: str = "ddp"  # ddp | fsdp (only used when launched with WORLD_SIZE > 1)
    backend: str = "auto"  # auto (nccl on GPU, gloo on CPU) | gloo | nccl


@dataclass
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    train: TrainSection = field(default_factory=TrainSection)
    eval: EvalSection = field(default_factory=EvalSection)
    dist: DistSection = field(default_factory=DistSection)
    source: str = "<defaults>"  # where the config came from, for error messages

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("source")
        model = d.pop("model")
        d["model"] = {"preset": model["preset"], **model["overrides"]}
        return _drop_none(d)

    def validate(self) -> None:
        """Values that are the right type but not a valid choice: one error naming the key."""
        from lmforge.assets import precision_name
        from lmforge.train.objectives import OBJECTIVES

        t = self.train
        if t.objective not in OBJECTIVES:
            raise LmforgeError(
                f"{self.source}: unknown train.objective {t.objective!r} "
                f"(known: {', '.join(sorted(OBJECTIVES))})"
            )
        try:
            precision_name(t.dtype)
        except LmforgeError as exc:
            raise LmforgeError(f"{self.source}: train.dtype: {exc}") from None
        for name in ("max_iters", "batch_size", "grad_accum", "block_size"):
            if getattr(t, name) <= 0:
                raise LmforgeError(
                    f"{self.source}: train.{name} must be positive, got {getattr(t, name)}"
                )


_SECTION_TYPES = {
    "model": ModelSection,
    "data": DataSection,
    "optim": OptimSection,
    "train": TrainSection,
    "eval": EvalSection,
    "dist": DistSection,
}


def _drop_none(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _drop_none(v) for k, v in d.items() if v is not None}
    return d


def _model_fields() -> set[str]:
    from lmforge.model import ModelConfig

    return {f.name for f in dataclasses.fields(ModelConfig)}


def config_from_dict(raw: dict[str, Any], source: str = "<dict>") -> TrainConfig:
    cfg = TrainConfig(source=source)
    for section, values in raw.items():
        if section not in _SECTION_TYPES:
            raise LmforgeError(
                f"{source}: unknown config section [{section}] (known: {', '.join(_SECTION_TYPES)})"
            )
        if not isinstance(values, dict):
            raise LmforgeError(f"{source}: [{section}] must be a table of keys")
        for key, value in values.items():
            set_key(cfg, f"{section}.{key}", value)
    return cfg


def set_key(cfg: TrainConfig, dotted: str, value: Any) -> None:
    """Set `section.key` to value, with a clear error for a key that does not exist."""
    section, _, key = dotted.partition(".")
    if section not in _SECTION_TYPES or not key:
        raise LmforgeError(
            f"{cfg.source}: unknown config key {dotted!r} (use section.key; sections: {', '.join(_SECTION_TYPES)})"
        )
    if section == "model":
        if key == "preset":
            cfg.model.preset = value
            return
        if key not in _model_fields():
            raise LmforgeError(
                f"{cfg.source}: unknown config key 'model.{key}' (not a ModelConfig field)"
            )
        cfg.model.overrides[key] = value
        return
    obj = getattr(cfg, section)
    names = {f.name: f for f in dataclasses.fields(obj)}
    if key not in names:
        raise LmforgeError(
            f"{cfg.source}: unknown config key '{section}.{key}' (known in [{section}]: {', '.join(names)})"
        )
    current = getattr(obj, key)
    if isinstance(current, bool) and not isinstance(value, bool):
        raise LmforgeError(f"{cfg.source}: '{section}.{key}' must be true or false, got {value!r}")
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(current, int) and not isinstance(current, bool) and isinstance(value, float):
        if not value.is_integer():
            raise LmforgeError(f"{cfg.source}: '{section}.{key}' must be an integer, got {value!r}")
        value = int(value)
    if (
        current is not None
        and not isinstance(value, type(current))
        and not (isinstance(current, (str, list)) and isinstance(value, (str, list)))
    ):
        raise LmforgeError(
            f"{cfg.source}: '{section}.{key}' must be {type(current).__name__}, got {value!r}"
        )
    setattr(obj, key, value)


def parse_override(text: str) -> tuple[str, Any]:
    """'optim.lr=3e-3' -> ('optim.lr', 0.003); values are TOML, or plain strings."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise LmforgeError(f"--set expects key=value, got {text!r}")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return key.strip(), parsed


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    if path is None:
        cfg = TrainConfig()
    else:
        p = Path(path)
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise LmforgeError(f"config file not found: {p}") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise LmforgeError(f"cannot read config {p}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise LmforgeError(f"{p}: invalid TOML ({exc})") from exc
        cfg = config_from_dict(raw, str(p))
    for item in overrides or []:
        key, value = parse_override(item)
        set_key(cfg, key, value)
    cfg.validate()
    return cfg


def to_toml(d: dict) -> str:
    """A minimal TOML writer for the resolved config (flat tables of scalars and lists)."""

    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + " }"
        return json.dumps(str(v))

    lines = []
    for section, values in d.items():
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {value(v)}" for k, v in values.items())
        lines.append("")
    return "\n".join(lines)


def model_config(cfg: TrainConfig, vocab_size: int):
    """The ModelConfig of a run: preset + overrides, vocabulary from the data, context >= block."""
    from lmforge.model import ModelConfig

    overrides = dict(cfg.model.overrides)
    overrides["vocab_size"] = vocab_size
    overrides.setdefault("max_seq_len", cfg.train.block_size)
    try:
        if cfg.model.preset:
            mc = ModelConfig.preset(cfg.model.preset, **overrides)
        else:
            mc = ModelConfig.from_dict(overrides)
    except TypeError as exc:
        raise LmforgeError(f"{cfg.source}: bad [model] values ({exc})") from exc
    if mc.max_seq_len < cfg.train.block_size:
        raise LmforgeError(
            f"{cfg.source}: train.block_size={cfg.train.block_size} exceeds model.max_seq_len={mc.max_seq_len}"
        )
    return mc
