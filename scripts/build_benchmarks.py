"""Write the benchmark subsets chattune ships (chattune/eval/benchmarks/*/) from the benchmarks' own
files.

Each subset is the first N items of the split lm-eval scores, so a shipped figure equals lm-eval's
on the full set with `--limit N`. Sources (PROVENANCE.md names their repositories, commits and
sha256):
  python scripts/build_benchmarks.py GSM8K_TEST.jsonl IFEVAL_input_data.jsonl
  TRUTHFULQA_mc_task.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "chattune" / "eval" / "benchmarks"
SIZES = {"gsm8k": 16, "ifeval": 16, "truthfulqa": 100}  # the default set in minutes on 2 CPU cores


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def _head(path: str, n: int) -> str:
    return "".join(line + "\n" for line in Path(path).read_text(encoding="utf-8").splitlines()[:n])


def _truthfulqa_row(item: dict) -> dict:
    """The Hub dataset's shape (truthful_qa/multiple_choice): each {answer: label} becomes choices
    and labels, in the file's order (the correct mc1 answer first, which is why lm-eval's
    doc_to_target is 0)."""
    def targets(d: dict) -> dict:
        return {"choices": list(d), "labels": list(d.values())}

    return {"question": item["question"], "mc1_targets": targets(item["mc1_targets"]),
            "mc2_targets": targets(item["mc2_targets"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("gsm8k_test")
    parser.add_argument("ifeval")
    parser.add_argument("truthfulqa_mc")
    args = parser.parse_args()
    subsets = {  # jsonl sources: their first lines as they are
        "gsm8k/test.jsonl": _head(args.gsm8k_test, SIZES["gsm8k"]),
        "ifeval/input_data.jsonl": _head(args.ifeval, SIZES["ifeval"]),
        "truthfulqa/mc_task.jsonl": _jsonl([_truthfulqa_row(item) for item in
                                            json.loads(Path(args.truthfulqa_mc).read_text(encoding="utf-8"))
                                            [:SIZES["truthfulqa"]]]),
    }
    for name, text in subsets.items():
        path = OUT / name
        path.write_text(text, encoding="utf-8")
        print(f"{name}: {text.count(chr(10))} rows, {len(text.encode())} bytes, "
              f"sha256 {hashlib.sha256(text.encode()).hexdigest()}")


if __name__ == "__main__":
    main()
