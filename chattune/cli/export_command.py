"""`chattune export gguf`: a model, run or adapter to a GGUF file for llama.cpp and Ollama, verified
in llama.cpp."""

from __future__ import annotations

import argparse
from pathlib import Path

from chattune.cli.common import console


def _cmd_export_gguf(args: argparse.Namespace) -> int:
    from chattune.export.gguf import check_quant, check_target, export_gguf
    from chattune.export.llama_cpp import require_llama_cpp, tools_dir
    from chattune.export.ollama import write_modelfile
    from chattune.export.source import model_to_export

    out = Path(args.out)
    quant = check_quant(args.quant)
    check_target(out, args.overwrite)  # before minutes of loading and merging
    require_llama_cpp()
    tools_dir()
    if args.adapter_only:
        return _adapter_only(args, out)
    with model_to_export(args.source, args.adapter) as (folder, model, tokenizer, what):
        console.print(f"exporting {what} to {out} ({quant}) with llama.cpp's converter")
        checked = export_gguf(folder, out, model, tokenizer, quant=quant, overwrite=args.overwrite,
                              verify=not args.no_verify, say=console.print)
    size = out.stat().st_size / 2**20
    console.print(checked.line() if checked
                  else "not verified (--no-verify): llama.cpp was not asked to check it")
    modelfile, note = write_modelfile(out, tokenizer)
    console.print(f"wrote {out} ({size:.0f} MiB) and {modelfile} (ollama create NAME -f "
                  f"{modelfile})")
    if note:
        console.print(f"note: {note}")
    return 0


def _adapter_only(args: argparse.Namespace, out: Path) -> int:
    import torch

    from chattune.errors import ExportError
    from chattune.export.gguf import export_adapter_gguf
    from chattune.export.source import resolve_source
    from chattune.model.inference import merge_saved_adapter
    from chattune.model.load import resolve_model_path

    base, adapter = resolve_source(args.source, args.adapter, adapter_first=True)
    if adapter is None:
        raise ExportError("--adapter-only: give a run folder with an adapter/ or --adapter DIR")
    merged, tokenizer, diff = merge_saved_adapter(base, adapter, device="cpu",
                                                  save_dtype=torch.float32)
    console.print(f"exporting the adapter {adapter} (for {base}) to {out} with llama.cpp's "
                  "convert_lora_to_gguf")
    checked = export_adapter_gguf(resolve_model_path(base), adapter, out, merged.eval(), tokenizer,
                                  overwrite=args.overwrite, verify=not args.no_verify)
    console.print(f"base + adapter in llama.cpp against the merged model: {checked.line()}"
                  if checked else "not verified (--no-verify)")
    console.print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB); llama.cpp applies it with "
                  "--lora")
    return 0


def add_export_command(sub: argparse._SubParsersAction) -> None:
    export = sub.add_parser("export",
                            help="export a model for other runtimes (gguf: llama.cpp, Ollama)",
                            description="gguf: a model, run folder or adapter as a GGUF file (with "
                            "an Ollama Modelfile beside it), written by llama.cpp's own converter "
                            "and checked in llama.cpp.")
    kinds = export.add_subparsers(dest="export_kind", required=True, metavar="KIND")
    p = kinds.add_parser("gguf", help="write a GGUF file with llama.cpp's own converter, verified "
                                      "in llama.cpp",
                         description="MODEL: a run folder (its merged/, model/ or base + "
                         "adapter/), a model folder, a hub id or the default model. The GGUF "
                         "carries the chat template and the end-of-turn stop; llama.cpp then "
                         "compares its logits and greedy answers with the source model's, and a "
                         "file that fails the check is not written.")
    p.add_argument("source", metavar="MODEL",
                   help="run folder, model folder, adapter folder, hub id or "
                   "HuggingFaceTB/SmolLM2-135M-Instruct")
    p.add_argument("out", help="the GGUF file to write (OUT.gguf)")
    p.add_argument("--adapter",
                   help="a LoRA adapter folder to merge into MODEL first (in fp32, checked)")
    p.add_argument("--quant", default="f16",
                   help="f16 (default), bf16, f32, q8_0, or a llama.cpp quantisation: "
                   "q4_k_m, q5_k_m, q6_k, q4_0, ...")
    p.add_argument("--adapter-only", action="store_true",
                   help="write the LoRA adapter alone as a GGUF adapter "
                   "(llama.cpp's --lora), checked with the base against the merged model")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the check in llama.cpp (said so in the output)")
    p.set_defaults(func=_cmd_export_gguf)
