"""The judges: any OpenAI-compatible chat endpoint by URL (vLLM, Ollama, llama.cpp's server,
`transformers serve`) or a model chattune has loaded. Each takes filled-in rubrics and returns the
replies in order."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlparse

from chattune.config import JudgeConfig
from chattune.data.schema import Message
from chattune.errors import JudgeError
from chattune.eval.judge import read_rubric
from chattune.generate import generate_batch
from chattune.model.inference import load_for_inference


class JudgeUnreachable(JudgeError):
    """Nothing answers at the judge's URL."""


def api_base(url: str) -> str:
    """An OpenAI base URL: `http://host:port` gets `/v1`, a URL with a path is kept (trailing slash
    dropped)."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise JudgeError(f"judge URL {url!r}: expected http(s)://HOST:PORT[/v1], e.g. http://localhost:8000/v1")
    return url.rstrip("/") if parsed.path.strip("/") else url.rstrip("/") + "/v1"


class EndpointJudge:
    """A judge behind an OpenAI-compatible /chat/completions endpoint, greedy (temperature 0).
    Created only after the endpoint answered /models, so an unreachable URL fails before any answer
    is generated."""

    def __init__(self, url: str, model: str | None = None, *, api_key: str | None = None,
                 max_tokens: int = 512, parallel: int = 4, timeout: float = 300.0):
        self.base, self.api_key, self.max_tokens, self.parallel, self.timeout = (
            api_base(url), api_key, max_tokens, parallel, timeout)
        served = self._served_models()
        # a server that lists nothing (or cannot list: `transformers serve` pinned to a local
        # folder) serves one model: requests then name none
        self.model = model or (served[0] if served else None)
        self.name = f"{self.model} at {self.base}" if self.model else f"the model at {self.base}"

    def _request(self, path: str, body: dict[str, Any] | None = None,
                 timeout: float | None = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:300]
            raise JudgeError(f"judge at {self.base}{path}: HTTP {e.code} {e.reason}: "
                             f"{detail}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            reason = getattr(e, "reason", e)
            raise JudgeUnreachable(f"judge at {self.base} cannot be reached ({reason}); start the "
                             "server or check the URL (an OpenAI-compatible base such as "
                             "http://localhost:8000/v1)") from None
        except json.JSONDecodeError:
            raise JudgeError(f"judge at {self.base}{path}: the reply is not JSON; is this an "
                             "OpenAI-compatible endpoint?") from None

    def _served_models(self) -> list[str]:
        """The ids /models lists; [] when the server answers but cannot list them (reachability is
        what counts)."""
        try:
            listing = self._request("/models", timeout=min(self.timeout, 30.0))
        except JudgeUnreachable:
            raise
        except JudgeError:
            return []
        return [m.get("id") for m in listing.get("data", []) if isinstance(m, dict) and m.get("id")]

    def _one(self, prompt: str) -> str:
        body = {"messages": [{"role": "user", "content": prompt}], "temperature": 0.0,
                "max_tokens": self.max_tokens, "stream": False,
                **({"model": self.model} if self.model else {})}
        reply = self._request("/chat/completions", body)
        try:
            return reply["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise JudgeError(f"judge at {self.base}: unexpected reply "
                             f"{json.dumps(reply)[:300]}") from None

    def __call__(self, prompts: list[str]) -> list[str]:
        # servers batch concurrent requests
        with ThreadPoolExecutor(max_workers=max(1, self.parallel)) as pool:
            return list(pool.map(self._one, prompts))


class LocalJudge:
    """A judge chattune has loaded: greedy replies through the model's chat template, in batches."""

    def __init__(self, model: Any, tokenizer: Any, name: str, *, max_tokens: int = 512,
                 batch_size: int = 8):
        self.model, self.tokenizer, self.name, self.max_tokens, self.batch_size = (
            model, tokenizer, name, max_tokens, batch_size)

    def __call__(self, prompts: list[str]) -> list[str]:
        return generate_batch(self.model, self.tokenizer, [[Message("user", p)] for p in prompts],
                              max_new_tokens=self.max_tokens, batch_size=self.batch_size)


class OpenedJudge:
    """The judge a training config's compare.judge names: an endpoint is asked for its models at
    once (an unreachable URL fails before any work), a local model is loaded at the first `get()`
    (after training, when its memory is free)."""

    def __init__(self, cfg: JudgeConfig, device: Any):
        self.rubric = read_rubric(cfg.rubric)
        self._cfg, self._device = cfg, device
        self._judge: Any = (EndpointJudge(cfg.url, cfg.model, max_tokens=cfg.max_tokens)
                            if cfg.url else None)
        self.name = self._judge.name if self._judge else cfg.model

    def get(self) -> Any:
        if self._judge is None:
            model, tokenizer = load_for_inference(self._cfg.model, device=self._device)
            self._judge = LocalJudge(model, tokenizer, self._cfg.model,
                                     max_tokens=self._cfg.max_tokens)
        return self._judge

