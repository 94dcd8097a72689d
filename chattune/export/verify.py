"""Does the GGUF compute what the model it came from computes? Both run the same conversations:
llama.cpp's logits against transformers' at every position (top-1 agreement, largest difference),
greedy answers through llama.cpp's own chat handling from the GGUF's template against chattune's,
and the end-of-turn token as a stop."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from chattune.data.schema import Message
from chattune.errors import ExportError
from chattune.export.llama_cpp import require_llama_cpp
from chattune.templates.render import render
from chattune.templates.setup import stop_token_ids

# the least top-1 agreement an export must reach: 16-bit files agree almost everywhere; q8_0 nearly;
# lower-bit quantisation changes small models' predictions often (the bound is stated, and the
# figure reported)
TOP1_BOUND = {"f32": 0.99, "f16": 0.99, "bf16": 0.99, "q8_0": 0.90}
OTHER_QUANT_BOUND = 0.60

CONVERSATIONS = [
    [Message("user", "What is the capital of France?"),
     Message("assistant", "The capital of France is Paris.")],
    [Message("system", "You are a concise assistant."),
     Message("user", "Name three primary colours."), Message("assistant", "Red, yellow and blue.")],
    [Message("user", "What is 12 + 30?"), Message("assistant", "12 + 30 = 42.")],
    [Message("user", "Write a haiku about the sea."),
     Message("assistant",
             "Waves fold into foam,\nsalt wind carries gull voices,\nthe tide keeps its time.")],
    [Message("user", "Translate 'good morning' into Spanish."),
     Message("assistant", "Buenos días.")],
]


@dataclass
class Verification:
    """What the comparison found, and whether it meets the bound for the file's type."""

    quant: str
    positions: int
    top1: float
    max_dlogit: float
    answers_equal: int
    answers: int
    stop_tokens: list[str]
    stops_ok: bool
    bound: float
    stopped: int = 0  # llama.cpp's greedy answers that ended at an end-of-generation token

    @property
    def passed(self) -> bool:
        """The bound met, the end-of-turn a stop, and (16- and 32-bit files) every greedy answer
        equal."""
        answers_ok = self.answers_equal == self.answers or self.quant not in ("f32", "f16", "bf16")
        return self.top1 >= self.bound and self.stops_ok and answers_ok

    def line(self) -> str:
        """e.g. "verified: top-1 99.8% over 812 positions, max |dlogit| 0.04; 5/5 greedy answers
        equal; stops at <|im_end|>"."""
        word = "verified" if self.passed else "NOT verified"
        stops = (f"stops at {', '.join(self.stop_tokens)}" if self.stops_ok else
                 f"does NOT stop at {', '.join(self.stop_tokens)}") + (f" ({self.stopped}/"
                                                                       f"{self.answers} answers "
                                                                       "did)")
        return (f"{word} ({self.quant}): top-1 {self.top1:.1%} over {self.positions} positions "
                f"(bound {self.bound:.0%}), max |dlogit| {self.max_dlogit:.3g}; "
                f"{self.answers_equal}/{self.answers} greedy answers equal; {stops}")


def verify_gguf(path: Path, model: Any, tokenizer: Any, quant: str,
                conversations: Sequence[Sequence[Message]] = CONVERSATIONS,
                max_new_tokens: int = 48, lora: Path | None = None) -> Verification:
    """Compare the GGUF at `path` (with the GGUF adapter `lora` applied, if given) with `model`
    (transformers, fp32, the weights the GGUF was made from: with an adapter, the merged model)."""
    llm = open_llama(path, lora)
    try:
        agree, total, worst = _logit_agreement(llm, model, tokenizer, conversations)
        equal, stopped_alike, stopped = _greedy_answers(llm, model, tokenizer, conversations,
                                                        max_new_tokens)
        stops = stop_token_ids(tokenizer)
        eog = {int(llm.metadata.get(f"tokenizer.ggml.{k}_token_id", -1))
               for k in ("eos", "eot", "eom")}
        stops_ok = any(s in eog for s in stops) and stopped_alike
        if llm.metadata.get("tokenizer.chat_template") != tokenizer.chat_template:
            raise ExportError(f"{path}: the GGUF's chat template differs from the model's: "
                              "llama.cpp would format chats differently from training")
    finally:
        llm.close()  # Llama's __del__ raises at interpreter exit
    names = [tokenizer.convert_ids_to_tokens(s) for s in stops if s in eog] or \
        [tokenizer.convert_ids_to_tokens(s) for s in stops]
    return Verification(quant, total, agree / max(total, 1), worst, equal, len(conversations),
                        names, stops_ok, TOP1_BOUND.get(quant, OTHER_QUANT_BOUND), stopped)


def open_llama(path: Path, lora: Path | None = None) -> Any:
    """The GGUF in llama.cpp with every logit kept, on llama.cpp's plain CPU buffers: its AMX and
    repacked weight buffers crash on some CPUs with AMX (llama.cpp issue 20824: a segfault in
    ggml_backend_amx_mul_mat, seen here with q8_0), and the check must run wherever chattune does.
    llama-cpp-python has no argument for it, so its default model parameters are wrapped while the
    model loads."""
    llama_cpp = require_llama_cpp()
    from llama_cpp import llama_cpp as low

    defaults = low.llama_model_default_params

    def plain_buffers():
        params = defaults()
        params.use_extra_bufts = False
        return params

    low.llama_model_default_params = plain_buffers
    try:
        return llama_cpp.Llama(model_path=str(path), logits_all=True, n_ctx=1024,
                               n_threads=torch.get_num_threads(),
                               verbose=False, seed=0, lora_path=str(lora) if lora else None)
    finally:
        low.llama_model_default_params = defaults


def _logit_agreement(llm: Any, model: Any, tokenizer: Any,
                     conversations: Sequence[Sequence[Message]]):
    """(positions where the top-1 token agrees, positions, largest |logit difference|) over whole
    conversations."""
    agree = total = 0
    worst = 0.0
    for conv in conversations:
        ids = render(tokenizer, list(conv)).input_ids
        with torch.no_grad():
            ref = model(input_ids=torch.tensor([ids],
                                               device=model.device)).logits[0].float().cpu().numpy()
        llm.reset()
        llm.eval(ids)
        got = np.asarray(llm.scores[: len(ids)], dtype=np.float32)
        # padded embedding rows past the vocabulary are never produced
        width = min(ref.shape[-1], got.shape[-1])
        ref, got = ref[:, :width], got[:, :width]
        agree += int((ref.argmax(-1) == got.argmax(-1)).sum())
        total += len(ids)
        worst = max(worst, float(np.abs(ref - got).max()))
    return agree, total, worst


def _hf_greedy(model: Any, tokenizer: Any, prompt: list[Message], stops: list[int],
               max_new_tokens: int):
    """(reply text, whether it ended at a stop token): transformers' greedy answer through the chat
    template."""
    ids = render(tokenizer, prompt, add_generation_prompt=True).input_ids
    with torch.no_grad():
        out = model.generate(input_ids=torch.tensor([ids], device=model.device),
                             max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stops,
                             pad_token_id=stops[0])
    new = out[0, len(ids):].tolist()
    return tokenizer.decode(new, skip_special_tokens=True).strip(), bool(new) and new[-1] in stops


def _greedy_answers(llm: Any, model: Any, tokenizer: Any,
                    conversations: Sequence[Sequence[Message]],
                    max_new_tokens: int) -> tuple[int, bool, int]:
    """Each conversation's prompt answered greedily by both, llama.cpp through the GGUF's own chat
    template: (answers equal, whether llama.cpp stopped wherever it answered as transformers did and
    transformers ended the turn, llama.cpp's answers that ended at a stop)."""
    stops = stop_token_ids(tokenizer)
    equal, alike, stopped_here = 0, True, 0
    for conv in conversations:
        prompt = list(conv[:-1])
        reference, stopped = _hf_greedy(model, tokenizer, prompt, stops, max_new_tokens)
        llm.reset()
        out = llm.create_chat_completion(messages=[m.to_template_dict() for m in prompt],
                                         temperature=0.0, max_tokens=max_new_tokens,
                                         seed=0)["choices"][0]
        same = (out["message"]["content"] or "").strip() == reference
        equal += same
        stopped_here += out["finish_reason"] == "stop"
        if stopped and same:  # transformers ended the turn: llama.cpp must stop there too
            alike &= out["finish_reason"] == "stop"
    return equal, alike, stopped_here
