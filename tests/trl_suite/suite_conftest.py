"""conftest.py of the run directory (run.py copies it there): Hub ids -> local stand-ins,
exclusions, the report.

Settings come from the environment run.py sets: TRL_SUITE_MANIFEST (stand-ins), TRL_SUITE_TARGET
(trl | chattune), TRL_SUITE_REPORT (JSON lines written here, one per test), TRL_SUITE_EXCLUSIONS
(JSON: [[pattern, reason], ...]).
"""

from __future__ import annotations

import functools
import importlib.abc
import json
import os
import sys
from pathlib import Path

import pytest

MANIFEST = json.loads(Path(os.environ["TRL_SUITE_MANIFEST"]).read_text())
TARGET = os.environ["TRL_SUITE_TARGET"]
LOCAL = {**MANIFEST["models"], **MANIFEST["tokenizers"]}  # Hub id -> directory


class _NoTRL(importlib.abc.MetaPathFinder):
    """With target chattune nothing may import TRL: a passing test then passes on chattune alone."""

    def find_spec(self, name, path=None, target=None):
        if name == "trl" or name.startswith("trl."):
            raise ImportError(f"TRL is blocked in the chattune run (something imported {name!r})")
        return None


if TARGET == "chattune":
    sys.meta_path.insert(0, _NoTRL())


def _local(name_or_path):
    return LOCAL.get(name_or_path, name_or_path) if isinstance(name_or_path, str) else name_or_path


def _redirect_from_pretrained(owner: type) -> None:
    """Wrap owner.from_pretrained so a Hub id of a stand-in loads the local directory (a Hub
    revision is dropped)."""
    original = owner.__dict__["from_pretrained"].__func__

    @functools.wraps(original)
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        local = _local(pretrained_model_name_or_path)
        if local is not pretrained_model_name_or_path:
            kwargs.pop("revision", None)
        return original(cls, local, *args, **kwargs)

    owner.from_pretrained = classmethod(from_pretrained)


def _install_model_redirects() -> None:
    import transformers
    from transformers.models.auto import modeling_auto
    from transformers.models.auto.auto_factory import _BaseAutoModelClass

    owners = [transformers.PreTrainedModel, _BaseAutoModelClass, transformers.AutoConfig,
              transformers.PreTrainedConfig, transformers.AutoTokenizer,
              transformers.PreTrainedTokenizerBase, transformers.AutoProcessor,
              transformers.ProcessorMixin, transformers.GenerationConfig]
    # each AutoModelFor* class carries its own copy of from_pretrained (transformers'
    # auto_class_update)
    owners += [obj for obj in vars(modeling_auto).values()
               if isinstance(obj, type) and issubclass(obj, _BaseAutoModelClass)
               and obj is not _BaseAutoModelClass]
    for owner in owners:
        if isinstance(owner.__dict__.get("from_pretrained"), classmethod):
            _redirect_from_pretrained(owner)


def _install_hub_redirects() -> None:
    """huggingface_hub's downloads of a stand-in's repo id give the local directory (or the file in
    it)."""
    import huggingface_hub

    snapshot_download, hf_hub_download = (huggingface_hub.snapshot_download,
                                          huggingface_hub.hf_hub_download)

    @functools.wraps(snapshot_download)
    def snapshot(repo_id, *args, **kwargs):
        return LOCAL[repo_id] if repo_id in LOCAL else snapshot_download(repo_id, *args, **kwargs)

    @functools.wraps(hf_hub_download)
    def download(repo_id, filename, *args, subfolder=None, **kwargs):
        if repo_id not in LOCAL:
            return hf_hub_download(repo_id, filename, *args, subfolder=subfolder, **kwargs)
        path = Path(LOCAL[repo_id], subfolder or "", filename)
        if not path.exists():
            raise huggingface_hub.errors.EntryNotFoundError(f"{filename} not in the stand-in of "
                                                            f"{repo_id}")
        return str(path)

    huggingface_hub.snapshot_download, huggingface_hub.hf_hub_download = snapshot, download


def _install_dataset_redirect() -> None:
    """datasets.load_dataset(<Hub id of a stand-in>, config, split=..., streaming=...) reads the
    local Parquet files."""
    import datasets

    original = datasets.load_dataset

    @functools.wraps(original)
    def load_dataset(path, name=None, *args, **kwargs):
        configs = MANIFEST["datasets"].get(path) if isinstance(path, str) else None
        if configs is None:
            return original(path, name, *args, **kwargs)
        if name is None:
            if len(configs) != 1:
                raise ValueError(f"Config name is missing for {path}; pick one of "
                                 f"{sorted(configs)}")
            name = next(iter(configs))
        if name not in configs:
            raise ValueError(f"BuilderConfig '{name}' not found for stand-in {path}. Available: "
                             f"{sorted(configs)}")
        if args:
            raise TypeError("pass load_dataset's options by keyword for a stand-in data set")
        kwargs.pop("revision", None)
        return original("parquet", data_files=configs[name], **kwargs)

    datasets.load_dataset = load_dataset


def _install_cpu_bf16() -> None:
    """TRL's configs default to bf16=True; TRL's CI runs on GPUs. Without one, transformers'
    TrainingArguments refuses bf16 unless use_cpu is set, so every TRL test would stop at
    SFTConfig(...). Where torch has no GPU, let transformers' check report whether the CPU does bf16
    (it does autocast there), as TRL's CI sees a GPU. Both targets get this; it changes no test."""
    import torch
    import transformers.training_args as training_args
    from transformers.utils import is_torch_bf16_available_on_device

    if not torch.cuda.is_available():
        training_args.is_torch_bf16_gpu_available = lambda: is_torch_bf16_available_on_device("cpu")


_install_model_redirects()
_install_hub_redirects()
_install_cpu_bf16()
_install_dataset_redirect()


@pytest.fixture
def lazy_shared_datadir() -> Path:
    """pytest-datadir's fixture as TRL's tests use it: the tests' `data/` directory."""
    return Path(__file__).parent / "tests" / "data"


# ------------------------------------------------------------------------------------- exclusions
# and the report

EXCLUDED: list[tuple[str, str]] = json.loads(os.environ.get("TRL_SUITE_EXCLUSIONS", "[]"))
REPORT = Path(os.environ["TRL_SUITE_REPORT"])


def pytest_sessionstart(session):
    import importlib.metadata as md

    names = (("chattune", "transformers", "torch", "datasets", "peft")
             + (("trl",) if TARGET == "trl" else ()))
    versions = {}
    for name in names:
        module = sys.modules.get(name) or __import__(name)
        versions[name] = getattr(module, "__version__", None) or md.version(name)
    trl = sys.modules.get("trl")
    if trl is not None:
        versions["trl_path"] = str(Path(trl.__file__).parent)
    _write({"meta": versions})


def pytest_collection_modifyitems(config, items):
    from _exclusions import reason_for  # run.py copies exclusions.py there

    for item in items:
        reason = reason_for(item.nodeid, EXCLUDED)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=f"out of scope: {reason}"))
            item.user_properties.append(("excluded", reason))


def _first_line(excinfo) -> str:
    text = str(excinfo.value).strip().splitlines()
    return f"{excinfo.type.__name__}: {text[0] if text else ''}".rstrip(": ")


def _write(record: dict) -> None:
    with REPORT.open("a") as f:
        f.write(json.dumps(record) + "\n")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    excluded = dict(item.user_properties).get("excluded")
    if report.when == "call" or (report.when == "setup" and not report.passed):
        if excluded is not None:
            status, error = "excluded", excluded
        elif report.skipped:
            status = "xfailed" if hasattr(report, "wasxfail") else "skipped"
            error = report.wasxfail if hasattr(report, "wasxfail") else str(report.longrepr[-1])
        elif report.passed:
            status, error = ("xpassed", "") if hasattr(report, "wasxfail") else ("passed", "")
        else:
            status = "failed" if report.when == "call" else "error"
            error = (_first_line(call.excinfo) if call.excinfo is not None
                     else report.longreprtext.splitlines()[-1])
            if "Timeout" in error or "Timeout" in report.longreprtext[-400:]:
                status, error = "timeout", error or "timeout"
        _write({"nodeid": item.nodeid, "status": status, "error": error,
                "seconds": round(report.duration, 2)})


def pytest_collectreport(report):
    if report.failed:
        lines = report.longreprtext.strip().splitlines()
        error = next((ln[1:].strip() for ln in lines if ln.startswith("E ")),
                     lines[-1] if lines else "")
        _write({"nodeid": report.nodeid, "status": "collection error", "error": error,
                "seconds": 0})
