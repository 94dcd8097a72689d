"""report.html: one self-contained page (images inlined, no network) that says what a run did and
how it went."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import yaml

from chattune.outputs.metrics import read_metrics
from chattune.outputs.plots import plot_loss, plot_series
from chattune.outputs.run_info import read_run_info

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.3em \
.6em;text-align:left;
vertical-align:top}th{background:#f4f4f4}pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:.85em}
img{max-width:100%;border:1px solid #eee}.side td{width:50%;white-space:pre-wrap;font-size:.9em}
.answers td{white-space:pre-wrap;font-size:.9em}
"""
# set on <body> once every image has loaded and decoded, so a headless browser can confirm the page
# is whole
IMAGE_CHECK = """<script>
window.addEventListener("load", () => {
  const imgs = [...document.images];
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.images = ok + "/" + imgs.length;
});
</script>"""


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _table(rows: list[tuple[Any, ...]], header: tuple[str, ...] | None = None,
           cls: str = "") -> str:
    head = "<tr>" + "".join(f"<th>{_esc(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}">{head}{body}</table>'


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<p><img alt="{_esc(alt)}" src="data:image/png;base64,{data}"></p>'


def _fmt(v: Any) -> str:
    """A value as a person reads it: floats to 4 figures, {"messages": 12} as "messages: 12", [] as
    "none"."""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items()) or "none"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v) or "none"
    return str(v)


def _peak_memory(train: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Peak GPU memory over the run (CUDA runs log it with every record)."""
    rows = []
    for key, label in (("peak_memory_allocated_gb", "peak GPU memory allocated"),
                       ("peak_memory_reserved_gb", "peak GPU memory reserved")):
        values = [r[key] for r in train if key in r]
        if values:
            rows.append((label, f"{max(values):.2f} GB"))
    return rows


def write_report(out_dir: Path, *, data: dict[str, Any] | None = None,
                 timings: dict[str, float] | None = None,
                 config: dict[str, Any] | None = None) -> Path:
    """Write report.html (and the curves as PNG) from what the run left in `out_dir`; `config`: the
    settings shown where the run wrote no config.yaml (SFTTrainer's, as the loop read them)."""
    out_dir = Path(out_dir)
    records = (read_metrics(out_dir / "metrics.jsonl")
               if (out_dir / "metrics.jsonl").is_file() else [])
    parts = [f"<h1>chattune run: {_esc(out_dir.name)}</h1>"]
    info = read_run_info(out_dir)
    if info is not None:
        parts.append("<h2>Run</h2>" + _table(info.rows()))
    parts += _training(out_dir, records)
    parts += _compared(out_dir)
    parts += _benchmarks(out_dir) + _judge(out_dir) + _exports(out_dir)
    if data:
        parts.append("<h2>Data</h2>" + _table([(k, _fmt(v)) for k, v in data.items()]))
    if timings:
        parts.append("<h2>Timings</h2>" + _table([(k, f"{v:.1f}") for k, v in timings.items()]))
    config_file = out_dir / "config.yaml"
    if config_file.is_file():
        config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    if config:
        resolved = yaml.safe_dump(config, sort_keys=False)
        parts.append(f"<h2>Resolved config</h2><pre>{_esc(resolved)}</pre>")
    page = ('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>chattune '
            'report</title>'
            f"<style>{STYLE}</style></head><body>{''.join(parts)}{IMAGE_CHECK}</body></html>")
    path = out_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def _training(out_dir: Path, records: list[dict[str, Any]]) -> list[str]:
    """The summary, the curves (written as PNG beside the report), eval metrics and answers during
    training."""
    train = [r for r in records if "loss" in r]
    evals = [r for r in records if "eval_loss" in r]
    images = [plot_loss(records, out_dir / "loss.png"),
              plot_series(train, "learning_rate", out_dir / "learning_rate.png"),
              plot_series(train, "grad_norm", out_dir / "grad_norm.png")]
    parts = []
    if train:
        last = train[-1]
        seconds = sum(r["step_time_s"] for r in train)
        parts.append("<h2>Summary</h2>" + _table([
            ("steps", last["step"]), ("final train loss", _fmt(last["loss"])),
            ("final eval loss", _fmt(evals[-1]["eval_loss"]) if evals else "-"),
            ("tokens", last["tokens"]), ("trained tokens", last["trained_tokens"]),
            ("mean tokens/s", f"{last['tokens'] / max(seconds, 1e-9):.0f}" if seconds else "-"),
            *_peak_memory(train)]))
    parts.append("<h2>Curves</h2>" + "".join(_image(p, p.stem) for p in images))
    if evals:
        keys = [k for k in evals[0] if k != "step"]
        parts.append("<h2>Eval metrics</h2>" + _table([(r["step"], *(_fmt(r[k]) for k in keys))
                                                       for r in evals],
                                                       ("step", *keys)))
    generations = [r for r in records if "generations" in r]
    if generations:
        rows = [(r["step"], g["prompt"], g.get("reference", "-"), g["reply"])
                for r in generations for g in r["generations"]]
        parts.append("<h2>Eval answers during training</h2>"
                     + _table(rows, ("step", "conversation", "reference answer", "answer"),
                              cls="answers"))
    return parts


def _compared(out_dir: Path) -> list[str]:
    """The before/after comparison: scores, then the first answers side by side."""
    compare = out_dir / "compare.jsonl"
    if not compare.is_file():
        return []
    scores = json.loads((out_dir / "compare.json").read_text(encoding="utf-8"))
    side = [json.loads(line) for line in compare.read_text(encoding="utf-8").splitlines()[:10]]
    return ["<h2>Before / after</h2>" + _table(
                [(k, *(_fmt(scores[s].get(k)) for s in ("base", "tuned"))) for k in scores["base"]],
                ("", "base", "tuned")),
            _table([(f"{s['question']}\n\nBASE:\n{s['base']}", f"TUNED:\n{s['tuned']}")
                    for s in side],
                   ("question and base answer", "tuned answer"), cls="side")]


def _benchmarks(out_dir: Path) -> list[str]:
    """compare.json's benchmarks (chattune.eval.benchmarks_compared): base and tuned ± stderr, the
    change, the falls."""
    path = out_dir / "compare.json"
    bench = (json.loads(path.read_text(encoding="utf-8")).get("benchmarks")
             if path.is_file() else None)
    if not bench:
        return []
    rows = [(task, metric, points(r["base"], r["base_stderr"]),
             points(r["tuned"], r["tuned_stderr"]),
             f"{100 * r['change']:+.1f}") for task, metrics in bench["tasks"].items()
            for metric, r in metrics.items()]
    falls = "".join(f"<p><b>{_esc(fall)}</b> (more than two standard errors)</p>"
                    for fall in bench["falls"])
    return ["<h2>Benchmarks before / after</h2>" + _table(rows,
                                                          ("task", "metric", "base", "tuned",
                                                           "change"))
            + falls]


def _judge(out_dir: Path) -> list[str]:
    """judge.json's wins, ties and losses with the win rate's interval, and the judge's first
    reasons."""
    path = out_dir / "judge.json"
    if not path.is_file():
        return []
    s = json.loads(path.read_text(encoding="utf-8"))
    lo, hi = s["ci95"]
    rows = [("judge", s["judge"]), ("pairs (each judged in both orders)", s["n"]),
            (f"{s['second']} wins / ties / losses", f"{s['wins']} / {s['ties']} / {s['losses']}"),
            ("win rate (ties count half)",
             f"{100 * s['win_rate']:.1f}% (95% CI {100 * lo:.1f}-{100 * hi:.1f}%)"),
            ("same position preferred in both orders", s["same_position"]),
            ("replies without a verdict", s["no_verdict"])]
    items = out_dir / "judge.jsonl"
    first = ([json.loads(line) for line in items.read_text(encoding="utf-8").splitlines()[:5]]
             if items.is_file() else [])
    header = ("question", s["second"], f"judge, {s['first']} shown first",
              f"judge, {s['second']} shown first")
    reasons = _table([(j["question"], j["outcome"], j["reply_in_order"], j["reply_swapped"])
                      for j in first], header,
                     cls="side") if first else ""
    return [f"<h2>Judge: {_esc(s['second'])} vs {_esc(s['first'])}</h2>" + _table(rows) + reasons]


def _exports(out_dir: Path) -> list[str]:
    """exports.json (chattune.export.in_run): each GGUF written after training with its check in
    llama.cpp."""
    path = out_dir / "exports.json"
    if not path.is_file():
        return []
    rows = [(e["file"], e["quant"], f"{e['bytes'] / 2**20:.0f} MiB", e["verification"])
            for e in json.loads(path.read_text(encoding="utf-8"))]
    return ["<h2>Exports</h2>" + _table(rows, ("file", "type", "size", "checked in llama.cpp"))]


def points(value: float, stderr: float | None) -> str:
    """A fraction in points (x100) with its standard error: "24.0 ± 6.1"."""
    return f"{100 * value:.1f}" + ("" if stderr is None else f" ± {100 * stderr:.1f}")
