"""Local stand-ins for the Hub models and data sets that TRL's tests load, built once into a cache.

The tests name Hub repos (`trl-internal-testing/tiny-Qwen2ForCausalLM-2.5`,
`trl-internal-testing/zen`, ...). Offline we build the same things the way TRL builds them: the tiny
models by TRL v1.9.0's own generator scripts and the data sets by its own data-set scripts (both
verbatim in `upstream/`), with only their Hub calls redirected: the source model's tokenizer comes
from `SOURCE_TOKENIZERS` below and `push_to_hub` writes to the cache.

Tokenizers. Qwen2.5 / Qwen3 (the models most tests use), pythia (GPT-NeoX) and Llama 3.2 get their
real vocabularies, read from the vocab-only GGUF files that llama.cpp ships
(`models/ggml-vocab-*.gguf`, inside the llama-cpp-python sdist on PyPI), with each model's real
added tokens and its real chat template (TRL's own copies in `trl/chat_templates/`). Models whose
vocabulary is not to be had offline (gpt-oss, Cohere2/Aya, GLM-4.5, Nemotron 3, OLMo 3, Bloom,
Mistral v0.1) get a real byte-level BPE vocabulary of another model plus their own special tokens
and template: `real_vocabulary` in the manifest says which. `python tests/trl_suite/standins.py` (or
run.py, which calls `ensure()`) builds them when missing or stale; `--force` rebuilds.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
UPSTREAM = HERE / "upstream"
TRL_190 = UPSTREAM / "trl-1.9.0"
TEMPLATES = [TRL_190 / "trl" / "chat_templates", HERE / "templates"]
CACHE = Path(os.environ.get("CHATTUNE_TRL_SUITE_CACHE",
                            Path.home() / ".cache" / "chattune" / "trl_suite"))
MANIFEST = "manifest.json"
# bump when what build() makes changes (the cache is rebuilt when this or the upstream files change)
BUILD_VERSION = 2

# llama.cpp's vocab-only GGUF files, taken from the llama-cpp-python sdist (PyPI) that vendors
# llama.cpp.
LLAMA_CPP_SDIST = "llama-cpp-python==0.3.36"
VOCAB_FILES = ("qwen2", "gpt-neox", "llama-bpe", "llama-spm")

QWEN25_ADDED = (
    ("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True), ("<|box_start|>", True), ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True), ("<|vision_start|>", True), ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True), ("<|video_pad|>", True), ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False), ("<|fim_middle|>", False), ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False), ("<|repo_name|>", False), ("<|file_sep|>", False),
)  # ids 151643..151664, as in Qwen2.5's tokenizer_config.json
QWEN3_ADDED = QWEN25_ADDED + (
    ("<tool_response>", False), ("</tool_response>", False), ("<think>", False),
    ("</think>", False),
)  # ids ..151668
QWEN_ADDITIONAL_SPECIAL = [t for t, special in QWEN25_ADDED[1:14] if special]
HARMONY_ADDED = tuple((t, True) for t in (
    "<|startoftext|>", "<|endoftext|>", "<|return|>", "<|constrain|>", "<|channel|>", "<|start|>",
    "<|end|>", "<|message|>", "<|call|>", "<|endofprompt|>",
))
COHERE_ADDED = tuple((t, True) for t in (
    "<PAD>", "<UNK>", "<CLS>", "<SEP>", "<MASK_TOKEN>", "<BOS_TOKEN>", "<EOS_TOKEN>",
    "<|START_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>", "<|USER_TOKEN|>", "<|CHATBOT_TOKEN|>",
    "<|SYSTEM_TOKEN|>", "<|START_RESPONSE|>", "<|END_RESPONSE|>", "<|START_THINKING|>",
    "<|END_THINKING|>", "<|START_ACTION|>", "<|END_ACTION|>", "<|START_TOOL_RESULT|>",
    "<|END_TOOL_RESULT|>",
))
GLM_ADDED = tuple((t, True) for t in (
    "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>", "<|system|>", "<|user|>", "<|assistant|>",
    "<|observation|>", "<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>",
    "</tool_response>", "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>", "/nothink",
))
CHATML_THINK_ADDED = tuple((t, True) for t in (
    "<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<tool_call>",
    "</tool_call>", "<tool_response>", "</tool_response>",
))
OLMO_ADDED = tuple((t, True)
                   for t in ("<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>", "<think>",
                             "</think>"))
BLOOM_ADDED = tuple((t, True) for t in ("<unk>", "<s>", "</s>", "<pad>"))


@dataclass(frozen=True)
class TokenizerSpec:
    """How to build the tokenizer of one source model (the model a TRL tiny model takes its
    tokenizer from)."""

    base: str  # llama.cpp vocab file: qwen2 | gpt-neox | llama-bpe | llama-spm
    # True: the source model's own vocabulary; False: another model's vocabulary stands in
    real: bool
    # (token, special), appended after the base vocabulary in this order
    added: tuple[tuple[str, bool], ...] = ()
    bos: str | None = None
    eos: str | None = None
    pad: str | None = None
    unk: str | None = None
    template: str | None = None  # file in TEMPLATES
    extra: dict[str, Any] = field(default_factory=dict)  # more tokenizer_config entries
    note: str = ""


QWEN25 = TokenizerSpec("qwen2", True, QWEN25_ADDED, eos="<|im_end|>", pad="<|endoftext|>",
                       template="qwen2_5.jinja",
                       extra={"model_max_length": 131072,
                              "additional_special_tokens": QWEN_ADDITIONAL_SPECIAL})
QWEN3 = TokenizerSpec("qwen2", True, QWEN3_ADDED, eos="<|im_end|>", pad="<|endoftext|>",
                      template="qwen3.jinja",
                      extra={"model_max_length": 131072,
                             "additional_special_tokens": QWEN_ADDITIONAL_SPECIAL},
                      note="template: TRL's qwen3.jinja (the Hub tiny model has Qwen3-8B "
                           "refs/pr/14, with {% generation %} markers, which TRL 1.9 swaps in "
                           "itself for assistant-only loss)")

SOURCE_TOKENIZERS: dict[str, TokenizerSpec] = {
    "Qwen/Qwen2.5-32B-Instruct": QWEN25,
    "Qwen/Qwen3-8B": QWEN3,
    "Qwen/Qwen3-30B-A3B": QWEN3,
    "Qwen/Qwen3-4B": QWEN3,  # test_train_with_set_chat_template_from_model clones its chat template
    "EleutherAI/pythia-14m": TokenizerSpec("gpt-neox", True, bos="<|endoftext|>",
                                           eos="<|endoftext|>", unk="<|endoftext|>"),
    "meta-llama/Llama-3.2-1B-Instruct": TokenizerSpec("llama-bpe", True, bos="<|begin_of_text|>",
                                                      eos="<|eot_id|>", template="llama3_2.jinja"),
    "openai/gpt-oss-20b": TokenizerSpec("qwen2", False, HARMONY_ADDED, bos="<|startoftext|>",
                                        eos="<|return|>", pad="<|endoftext|>",
                                        template="gptoss.jinja",
                                        note="Qwen2 BPE vocabulary instead of o200k_harmony"),
    "CohereLabs/tiny-aya-earth": TokenizerSpec("qwen2", False, COHERE_ADDED, bos="<BOS_TOKEN>",
                                               eos="<|END_OF_TURN_TOKEN|>", pad="<PAD>",
                                               unk="<UNK>", template="cohere2.jinja",
                                               note="Qwen2 BPE vocabulary; Command R7B's (cohere2) "
                                                    "template"),
    "zai-org/GLM-4.5": TokenizerSpec("gpt-neox", False, GLM_ADDED, eos="<|endoftext|>",
                                     pad="<|endoftext|>", template="glm4moe.jinja",
                                     note="GPT-NeoX BPE vocabulary (must stay under the config's "
                                          "fixed 151365)"),
    "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16": TokenizerSpec(
        "qwen2", False, CHATML_THINK_ADDED, bos="<s>", eos="<|im_end|>", unk="<unk>",
        template="nemotron_3_nano.jinja", note="Qwen2 BPE vocabulary"),
    "allenai/Olmo-3-7B-Think": TokenizerSpec("qwen2", False, OLMO_ADDED, eos="<|endoftext|>",
                                             pad="<|pad|>", note="Qwen2 BPE vocabulary (config pad "
                                                  "id 100277 needs > 100k tokens); no chat "
                                                  "template"),
    "mistralai/Mistral-7B-Instruct-v0.1": TokenizerSpec("llama-spm", False, bos="<s>", eos="</s>",
                                                        unk="<unk>",
                                                        template="mistral-7b-instruct-v0.1.jinja",
                                                        note="Llama 2 SentencePiece vocabulary "
                                                             "(same size and special tokens as "
                                                             "Mistral v0.1's)"),
    "bigscience/bloomz-560m": TokenizerSpec("gpt-neox", False, BLOOM_ADDED, bos="<s>", eos="</s>",
                                            pad="<pad>", unk="<unk>",
                                            extra={"padding_side": "left"},
                                            note="GPT-NeoX BPE vocabulary; no chat template, as "
                                                 "Bloom"),
}

# Hub tiny model -> TRL v1.9.0 generator script
# (scripts/generate_tiny_models/for_causal_lm/<script>.py).
TRL_TINY_MODELS = {
    "trl-internal-testing/tiny-Qwen2ForCausalLM-2.5": "qwen2_for_causal_lm_2_5",
    "trl-internal-testing/tiny-Qwen3ForCausalLM": "qwen3_for_causal_lm",
    "trl-internal-testing/tiny-Qwen3MoeForCausalLM": "qwen3_moe_for_causal_lm",
    "trl-internal-testing/tiny-GptOssForCausalLM": "gpt_oss_for_causal_lm",
    "trl-internal-testing/tiny-Cohere2ForCausalLM": "cohere2_for_causal_lm",
    "trl-internal-testing/tiny-Glm4MoeForCausalLM": "glm4_moe_for_causal_lm",
    "trl-internal-testing/tiny-NemotronHForCausalLM-nano": "nemotron_3_nano_for_causal_lm",
    "trl-internal-testing/tiny-Olmo3ForCausalLM": "olmo3_for_causal_lm",
    "trl-internal-testing/tiny-GPTNeoXForCausalLM": "gpt_neox_for_causal_lm",
    "trl-internal-testing/tiny-RemoteForCausalLM": "remote_for_causal_lm",
    "trl-internal-testing/tiny-MistralForCausalLM-0.1": "mistral_for_causal_lm_0_1",
}
# Hub data set -> (TRL tree in upstream/, data-set script there). The Hub's toolcall set is the
# output of the script as of commit f8181886c (`tools` as JSON strings, which
# test_train_toolcall_data_as_json json.loads); the v1.9.0 script stores them as a Json column but
# was not pushed again.
TRL_DATASETS = {
    "trl-internal-testing/zen": ("trl-1.9.0", "generate_zen_dataset"),
    "trl-internal-testing/harmony": ("trl-1.9.0", "generate_harmony_dataset"),
    "trl-internal-testing/toolcall": ("trl-f8181886c", "generate_toolcall_dataset"),
}
# Tokenizer-only ids (no model is loaded from them).
TOKENIZER_ONLY = ("Qwen/Qwen3-4B",)


def _fingerprint() -> str:
    """Changes with BUILD_VERSION or the upstream scripts and templates, so a stale cache is
    rebuilt."""
    digest = hashlib.sha256(str(BUILD_VERSION).encode())
    for path in sorted(UPSTREAM.glob("*/scripts/**/*.py")):
        digest.update(path.read_bytes())
    for directory in TEMPLATES:
        for path in sorted(directory.glob("*.jinja")):
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


# ------------------------------------------------------------------------------------ vocabularies


def fetch_vocab_files(cache: Path) -> dict[str, Path]:
    """llama.cpp's vocab-only GGUF files, extracted once from the llama-cpp-python sdist."""
    out = cache / "vocab"
    wanted = {name: out / f"ggml-vocab-{name}.gguf" for name in VOCAB_FILES}
    if all(p.exists() for p in wanted.values()):
        return wanted
    downloads = cache / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    sdists = sorted(downloads.glob("llama_cpp_python-*.tar.gz"))
    if not sdists:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary",
                        ":all:", "-d", str(downloads), LLAMA_CPP_SDIST], check=True)
        sdists = sorted(downloads.glob("llama_cpp_python-*.tar.gz"))
    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdists[-1]) as tar:
        for member in tar.getmembers():
            name = Path(member.name).name
            if any(name == p.name for p in wanted.values()):
                member.name = name
                tar.extract(member, out, filter="data")
    missing = [str(p) for p in wanted.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(f"not in {sdists[-1].name}: {missing}")
    return wanted


@functools.cache
def _bpe_vocab(gguf_path: Path) -> tuple[dict[str, int], list[tuple[str, str]], list[str]]:
    """(vocab, merges, the non-normal tokens) of a byte-level BPE vocab GGUF; llama.cpp's [PADn]
    fillers dropped."""
    import gguf

    reader = gguf.GGUFReader(str(gguf_path))
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    types = reader.fields["tokenizer.ggml.token_type"].contents()
    merges = [tuple(m.split(" ", 1)) for m in reader.fields["tokenizer.ggml.merges"].contents()]
    kept = [(tok, kind) for tok, kind in zip(tokens, types)
            if not (tok.startswith("[PAD") and tok.endswith("]"))]
    vocab = {tok: i for i, (tok, _) in enumerate(kept)}
    if len(vocab) != len(kept) or tokens[: len(kept)] != [tok for tok, _ in kept]:
        raise ValueError(f"{gguf_path.name}: padding fillers are not all at the end")
    return vocab, merges, [tok for tok, kind in kept if kind != gguf.TokenType.NORMAL]


def _base_tokenizer(spec: TokenizerSpec, vocab_files: dict[str, Path]) -> Any:
    from transformers import AddedToken, AutoTokenizer, GPTNeoXTokenizer, Qwen2Tokenizer

    path = vocab_files[spec.base]
    if spec.base == "qwen2":
        vocab, merges, others = _bpe_vocab(path)
        # the 151643 BPE tokens; specials: spec.added
        vocab = {t: i for t, i in vocab.items() if t not in others}
        first = spec.added[0][0]
        return Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, bos_token=None,
                              eos_token=first, pad_token=first, errors="replace")
    if spec.base == "gpt-neox":
        vocab, merges, others = _bpe_vocab(path)
        tok = GPTNeoXTokenizer(vocab=vocab, merges=merges, pad_token=None)
        # pythia's own added tokens (<|endoftext|>, <|padding|>, the runs of spaces) keep their ids
        tok.add_tokens([AddedToken(t, special=t.startswith("<|"), normalized=False)
                        for t in others])
        return tok
    # llama-bpe / llama-spm: transformers converts these GGUF vocabularies itself
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def build_tokenizer(spec: TokenizerSpec, vocab_files: dict[str, Path], out: Path) -> None:
    from transformers import AddedToken, GenerationConfig

    tok = _base_tokenizer(spec, vocab_files)
    for content, special in spec.added:
        if content not in tok.get_vocab():
            tok.add_tokens([AddedToken(content, special=special, normalized=False)],
                           special_tokens=special)
    if spec.base == "llama-bpe":  # Llama 3 starts every encoding with <|begin_of_text|>
        from tokenizers import processors

        bos = spec.bos
        tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
            special_tokens=[(bos, tok.convert_tokens_to_ids(bos))])
    specials = {"bos_token": spec.bos, "eos_token": spec.eos, "pad_token": spec.pad,
                "unk_token": spec.unk}
    for key, value in specials.items():
        setattr(tok, key, value)
    for key, value in spec.extra.items():
        if key == "additional_special_tokens":
            tok.add_special_tokens({"additional_special_tokens": value},
                                   replace_extra_special_tokens=True)
        else:
            setattr(tok, key, value)
            tok.init_kwargs[key] = value
    tok.chat_template = _template(spec.template) if spec.template else None
    out.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(out)
    ids = {k: tok.convert_tokens_to_ids(v) for k, v in specials.items() if v is not None}
    generation = {k.replace("_token", "_token_id"): v for k, v in ids.items() if k != "unk_token"}
    GenerationConfig(**generation).save_pretrained(out)
    _check_tokenizer(spec, out)


def _check_tokenizer(spec: TokenizerSpec, out: Path) -> None:
    """The saved tokenizer loads back with the specials and template we meant (catches silent config
    drops)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out)
    for key in ("bos", "eos", "pad", "unk"):
        want = getattr(spec, key)
        got = getattr(tok, f"{key}_token")
        if want is not None and got != want:
            raise ValueError(f"{out}: {key}_token {got!r}, expected {want!r}")
    if spec.template and tok.chat_template != _template(spec.template):
        raise ValueError(f"{out}: chat template not saved")
    if spec.base == "qwen2" and spec.real:
        assert tok.convert_tokens_to_ids("<|im_end|>") == 151645, "Qwen ids drifted"


def _template(name: str) -> str:
    for directory in TEMPLATES:
        if (directory / name).exists():
            return (directory / name).read_text()
    raise FileNotFoundError(name)


# ------------------------------------------------------------------------------------------ models


def _import_trl_scripts() -> Any:
    """TRL v1.9.0's `scripts` package from upstream/, with the Hub-facing helpers of `_common`
    replaced."""
    sys.path.insert(0, str(TRL_190))
    for name in [m for m in sys.modules if m == "scripts" or m.startswith("scripts.")]:
        del sys.modules[name]
    common = importlib.import_module("scripts.generate_tiny_models._common")
    if Path(common.__file__).resolve().parent.parent.parent != TRL_190:
        raise ImportError(f"imported the wrong `scripts` package: {common.__file__}")
    return common


@contextlib.contextmanager
def _redirected_hub(cache: Path, saved: dict[str, str]):
    """Inside: AutoTokenizer/GenerationConfig.from_pretrained(<source id>) read our stand-in
    tokenizers, and `_common.push_to_hub` saves the model where the manifest points instead of
    uploading it."""
    import transformers

    common = _import_trl_scripts()

    def local(model_id: str) -> str:
        if model_id not in SOURCE_TOKENIZERS:
            raise KeyError(f"no stand-in tokenizer for source model {model_id!r}")
        return str(cache / "tokenizers" / model_id)

    def push_to_hub(model, tokenizer, generation_config, prefix=None, suffix=None, create_pr=None):
        name = model.__class__.__name__
        repo_id = (f"{common.ORGANIZATION}/{prefix + '-' if prefix else ''}{name}"
                   f"{'-' + suffix if suffix else ''}")
        out = cache / "models" / repo_id
        if out.exists():
            shutil.rmtree(out)
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        if generation_config is not None:
            generation_config.save_pretrained(out)
        saved[repo_id] = str(out)

    tok_from_pretrained = transformers.AutoTokenizer.from_pretrained
    gen_from_pretrained = transformers.GenerationConfig.from_pretrained
    patches = {
        (common, "push_to_hub"): push_to_hub,
        (common, "check_transformers_version"): lambda expected_version=None: None,
        (common, "check_dtype_pattern"): lambda reference_id, model: None,
        (common, "print_config_diff"): lambda reference_id, model: None,
        (transformers.AutoTokenizer, "from_pretrained"):
            lambda model_id, *a, revision=None, **k: tok_from_pretrained(local(model_id), *a, **k),
        (transformers.GenerationConfig, "from_pretrained"):
            lambda model_id, *a, revision=None, **k: gen_from_pretrained(local(model_id), *a, **k),
    }
    originals = {key: getattr(*key) for key in patches}
    try:
        for (owner, attr), value in patches.items():
            setattr(owner, attr, value)
        yield common
    finally:
        for (owner, attr), value in originals.items():
            setattr(owner, attr, value)
        sys.path.remove(str(TRL_190))


def build_models(cache: Path) -> dict[str, str]:
    import torch

    saved: dict[str, str] = {}
    with _redirected_hub(cache, saved):
        for repo_id, script in TRL_TINY_MODELS.items():
            torch.manual_seed(0)
            module = f"scripts.generate_tiny_models.for_causal_lm.{script}"
            sys.modules.pop(module, None)
            # the script builds and "pushes" at import, as `python -m` runs it
            importlib.import_module(module)
            if repo_id not in saved:
                raise RuntimeError(f"{script} saved {sorted(saved)}, not {repo_id}")
    saved["trl-internal-testing/tiny-BloomForCausalLM"] = _build_bloom(cache)
    return saved


def _build_bloom(cache: Path) -> str:
    """tiny-BloomForCausalLM, as TRL v0.19.1's scripts/generate_tiny_models.py built it (Bloom left
    TRL's list)."""
    import torch
    from transformers import AutoTokenizer, BloomConfig, BloomForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(cache / "tokenizers" / "bigscience/bloomz-560m")
    config = BloomConfig(vocab_size=tokenizer.vocab_size
                         + len(tokenizer.added_tokens_encoder.keys()), hidden_size=8,
                         num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=2,
                         intermediate_size=32)
    torch.manual_seed(0)
    model = BloomForCausalLM(config)
    out = cache / "models" / "trl-internal-testing/tiny-BloomForCausalLM"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


# --------------------------------------------------------------------------------------- data sets


def build_datasets(cache: Path) -> dict[str, dict[str, dict[str, str]]]:
    """Run TRL's data-set scripts with `push_to_hub` writing one Parquet file per split, as the Hub
    stores them."""
    from datasets import Dataset, DatasetDict

    built: dict[str, dict[str, dict[str, str]]] = {}

    def push_to_hub(self, repo_id, config_name="default", **kwargs):
        splits = self.items() if isinstance(self, DatasetDict) else [("train", self)]
        for split, ds in splits:
            path = cache / "datasets" / repo_id / config_name / f"{split}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            ds.to_parquet(str(path))
            built.setdefault(repo_id, {}).setdefault(config_name, {})[split] = str(path)

    originals = (Dataset.push_to_hub, DatasetDict.push_to_hub)
    Dataset.push_to_hub = DatasetDict.push_to_hub = push_to_hub
    try:
        for repo_id, (tree, script) in TRL_DATASETS.items():
            path = UPSTREAM / tree / "scripts" / f"{script}.py"
            spec = importlib.util.spec_from_file_location(f"_trl_{script}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            module.main(test_size=0.1, push_to_hub=True, repo_id=repo_id)
        for repo_id, rows in PHILSCHMID_STANDINS.items():
            push_to_hub(Dataset.from_list(rows), repo_id)
    finally:
        Dataset.push_to_hub, DatasetDict.push_to_hub = originals
    return built


_CHAT = [{"role": "system", "content": "You are helpful"}, {"role": "user", "content": "Hello"},
         {"role": "assistant", "content": "Hi, how can I help you?"}]
# TRL 0.19.1's test_get_formatting_func_from_dataset_from_hub only looks at these data sets' column
# layout (instruction prompt/completion, OpenAI `messages`, ShareGPT `conversations` with
# from/value); three rows with the same layout stand in for them.
PHILSCHMID_STANDINS = {
    "philschmid/trl-test-instruction": [{"prompt": f"What is {i}+{i}?", "completion": str(2 * i)}
                                        for i in range(3)],
    "philschmid/dolly-15k-oai-style": [{"messages": _CHAT} for _ in range(3)],
    "philschmid/guanaco-sharegpt-style": [
        {"conversations": [{"from": "human", "value": "Hello"},
                           {"from": "gpt", "value": "Hi there"}]} for _ in range(3)
    ],
}


# ---------------------------------------------------------------------------------------- manifest


def build(cache: Path = CACHE) -> dict[str, Any]:
    vocab_files = fetch_vocab_files(cache)
    tokenizers = {}
    for source, spec in SOURCE_TOKENIZERS.items():
        out = cache / "tokenizers" / source
        build_tokenizer(spec, vocab_files, out)
        tokenizers[source] = {"path": str(out), "real_vocabulary": spec.real, "base": spec.base,
                              "template": spec.template, "note": spec.note}
    models = build_models(cache)
    datasets = build_datasets(cache)
    manifest = {
        "fingerprint": _fingerprint(),
        "models": models,
        "tokenizers": {k: v["path"] for k, v in tokenizers.items() if k in TOKENIZER_ONLY},
        "source_tokenizers": tokenizers,
        "datasets": datasets,
    }
    (cache / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def ensure(cache: Path = CACHE, force: bool = False) -> dict[str, Any]:
    """The manifest, building the stand-ins first when missing or stale (in a subprocess: keeps
    run.py light)."""
    path = cache / MANIFEST
    if not force and path.exists():
        manifest = json.loads(path.read_text())
        if manifest.get("fingerprint") == _fingerprint():
            return manifest
    cache.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
           "CHATTUNE_TRL_SUITE_CACHE": str(cache)}
    subprocess.run([sys.executable, str(Path(__file__)), "--build"], check=True, env=env,
                   cwd=str(cache))
    return json.loads(path.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", action="store_true", help="build now, in this process")
    parser.add_argument("--force", action="store_true", help="rebuild even if the cache is current")
    args = parser.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    if args.build:
        # our dir holds no `scripts`
        sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
        manifest = build(CACHE)
    else:
        manifest = ensure(CACHE, force=args.force)
    print(f"stand-ins in {CACHE}: {len(manifest['models'])} models, {len(manifest['datasets'])} "
          "data sets")


if __name__ == "__main__":
    main()
