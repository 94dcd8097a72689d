"""llama.cpp's own tools, all from one pinned llama-cpp-python version: the runtime and quantiser it
builds, and the converter (`convert_hf_to_gguf.py`, its `conversion/` package and the `gguf-py` of
the same tag) that its source package ships. The converter files are extracted once from that source
package into chattune's cache."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from chattune.config import cache_dir
from chattune.errors import ExportError

LLAMA_CPP_PYTHON = "0.3.36"  # keep in step with pyproject's gguf extra and constraints.txt
VENDOR = f"llama_cpp_python-{LLAMA_CPP_PYTHON}/vendor/llama.cpp/"
# what the converter needs from the source package (the rest is llama.cpp's C++ source, already
# built)
MEMBERS = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py", "conversion/", "gguf-py/", "LICENSE")
# the converter's outtypes; every other type is made from a 16-bit file by llama.cpp's quantiser
CONVERTER_TYPES = ("f32", "f16", "bf16", "q8_0")
QUANTISER_TYPES = ("q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "q4_k_s",
                   "q4_k_m", "q5_k_s", "q5_k_m", "q6_k")


def require_llama_cpp():
    """The llama_cpp module of the pinned version, or an ExportError that says how to install it."""
    try:
        import llama_cpp
    except ImportError:
        raise ExportError("GGUF export needs llama.cpp through llama-cpp-python: pip install "
                          f"'chattune[gguf]' (llama-cpp-python=={LLAMA_CPP_PYTHON}; it builds "
                          "llama.cpp, a few minutes)") from None
    if llama_cpp.__version__ != LLAMA_CPP_PYTHON:
        raise ExportError(f"llama-cpp-python {llama_cpp.__version__} is installed; chattune's "
                          f"export is pinned to {LLAMA_CPP_PYTHON} (converter, gguf-py and runtime "
                          f"from one version): pip install llama-cpp-python=={LLAMA_CPP_PYTHON}")
    return llama_cpp


def tools_dir() -> Path:
    """The cached converter tree of the pinned version, extracted from its source package on first
    use ($CHATTUNE_LLAMA_CPP_SDIST names a local copy of the package; else pip downloads it)."""
    target = cache_dir() / "llama.cpp" / LLAMA_CPP_PYTHON
    if (target / "convert_hf_to_gguf.py").is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        sdist = os.environ.get("CHATTUNE_LLAMA_CPP_SDIST") or _download_sdist(Path(tmp))
        _extract(Path(sdist), target)
    return target


def _download_sdist(where: Path) -> str:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q", "-d",
           str(where), f"llama-cpp-python=={LLAMA_CPP_PYTHON}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(where.glob("llama_cpp_python-*.tar.gz"))
    if done.returncode or not found:
        raise ExportError("llama.cpp's converter comes from the llama-cpp-python "
                          f"{LLAMA_CPP_PYTHON} source package, which pip could not fetch "
                          f"({done.stderr.strip()[-300:] or 'no file'}); download it and set "
                          "CHATTUNE_LLAMA_CPP_SDIST to its path")
    return str(found[0])


def _extract(sdist: Path, target: Path) -> None:
    """The converter's files from the source package into `target`, written beside it and renamed
    into place."""
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        with tarfile.open(sdist) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(VENDOR)
                       and m.name[len(VENDOR):].startswith(MEMBERS) and (m.isfile() or m.isdir())]
            if not members:
                raise ExportError(f"{sdist}: not the llama-cpp-python {LLAMA_CPP_PYTHON} source "
                                  "package")
            for m in members:
                m.name = m.name[len(VENDOR):]
            tar.extractall(partial, members=members, filter="data")
    except (tarfile.TarError, OSError) as e:
        raise ExportError(f"{sdist}: cannot read the llama-cpp-python source package "
                          f"({e})") from None
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)


def run_tool(script: str, args: list[str]) -> subprocess.CompletedProcess:
    """One of llama.cpp's Python tools, with its own gguf-py first on the path (never another gguf
    version)."""
    tools = tools_dir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tools / "gguf-py"),
                                                       os.environ.get("PYTHONPATH", "")]))
    env.pop("NO_LOCAL_GGUF", None)
    return subprocess.run([sys.executable, str(tools / script), *args], capture_output=True,
                          text=True, env=env)


def quantize(source: Path, out: Path, quant: str) -> None:
    """llama.cpp's quantiser (llama_model_quantize) from a 16-bit GGUF to `quant` (q4_k_m, ...)."""
    llama_cpp = require_llama_cpp()
    ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{quant.upper()}", None)
    if ftype is None:
        raise ExportError(f"--quant {quant}: llama.cpp has no such type; choose from "
                          f"{', '.join(CONVERTER_TYPES + QUANTISER_TYPES)}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = os.cpu_count() or 1
    if llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(), params) != 0:
        raise ExportError(f"llama.cpp's quantiser failed making {quant} from {source}")
