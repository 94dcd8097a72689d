#!/usr/bin/env bash
# The GPU measurements of issue 15 as one prepared script, for a lent GPU machine that has no PyPI and no model
# package, and a lease of minutes (see docs/gpu.md).
#
# Here, on a machine with PyPI and `make setup` done:
#   bench/gpu_kit.sh prepare        # .gpu/: wheels of constraints.txt's versions for that machine's Python 3.12,
#                                   # the default model's tokenizer, the default GGUF cut in parts of 25 MB
# There, through the device tool, carrying .gpu/wheels and .gpu/tokenizer (about 27 MB) and any .gpu/gguf part:
#   bench/gpu_kit.sh run STAGE...   # each STAGE's output in $OUT/STAGE.log (and .json), a summary last
#
# Stages, in the order worth running (times are estimates: none has run on a GPU yet):
#   env         the GPU, the packages (seconds)
#   tests       the cuda-marked tests (pytest -m cuda)
#   lora-1.7b   SmolLM2-1.7B shape, LoRA: chattune vs TRL (with and without gradient checkpointing), and chattune
#               with padding-free + flex attention, + Liger, + compile, + a 16k-token budget (about 6 minutes)
#   full-1.7b   the same shape, full fine-tuning (about 4 minutes)
#   lora-360m   SmolLM2-360M shape, LoRA (about 3 minutes)
#   gguf        keep the carried .gpu/gguf parts in /tmp/chattune-kit (they stay while the machine is warm)
#   demo        `make demo`'s run on the GPU, timed, once every GGUF part has arrived
#   smoke       the benchmark on a tiny shape (checks this script here too:
#               KIT_DEVICE=cpu KIT_INSTALL=0 PYTHON=.venv/bin/python bench/gpu_kit.sh run env smoke)
# KIT_DEADLINE_S (default 540): a stage that would start later than 60 s before it is skipped and a running one is
# stopped at it, so the call returns inside its timeout (give the device call about 30 s more) with what it has.
set -uo pipefail
cd "$(dirname "$0")/.."
KIT=.gpu
PYTHON=${PYTHON:-python3}
STASH=/tmp/chattune-kit
GGUF_NAME=SmolLM2-135M-Instruct.Q4_1.gguf
WHEELS=(transformers peft datasets pydantic pydantic_core tokenizers gguf trl liger-kernel torch-optimi)
DEPENDS=(dill multiprocess annotated-types typing-inspection typing_extensions)  # versions: the local venv's

prepare() {
  set -e
  local venv=.venv/bin/python
  rm -rf "$KIT" && mkdir -p "$KIT/wheels" "$KIT/gguf"
  local specs=()
  for name in "${WHEELS[@]}"; do specs+=("$(grep -i "^${name}==" constraints.txt)"); done
  for name in "${DEPENDS[@]}"; do
    specs+=("$name==$($venv -c "import importlib.metadata as m; print(m.version('$name'))")")
  done
  for spec in "${specs[@]}"; do
    $venv -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d "$KIT/wheels" "$spec" 2>&1 | grep -v "^WARNING: Location" || true
  done
  $venv - <<'EOF'
from chattune.config import DEFAULT_MODEL
from chattune.model.load import load_tokenizer, packaged_gguf, resolve_model_path

load_tokenizer(resolve_model_path(DEFAULT_MODEL)).save_pretrained(".gpu/tokenizer")
print(packaged_gguf(), file=open(".gpu/gguf/source", "w"))
EOF
  local gguf
  gguf=$(cat "$KIT/gguf/source")
  split -b 25M -d "$gguf" "$KIT/gguf/part-"
  sha256sum "$gguf" | cut -d' ' -f1 > "$KIT/gguf/sha256"
  rm "$KIT/gguf/source"
  du -sh "$KIT"/* "$KIT"/gguf/*
  echo "carry .gpu/wheels, .gpu/tokenizer, .gpu/gguf/sha256 and part-00 in the first call, the other parts after (docs/gpu.md)"
}

bench() {  # bench/train_speed.py on the GPU, bf16, the issue's batch and length, results under $OUT
  local name=$1
  shift
  $PYTHON bench/train_speed.py --device cuda --bf16 --batch 16 --max-length 1024 --rows 400 --steps 8 \
    --keep-models "$STASH/models" --out "$OUT/$name.json" "$@"
}

# chattune's speed features, alone and together; the last at about 16k tokens per step (the issue's MFU figure)
VARIANTS=(padding_free,attn=flex_attention liger,padding_free,attn=flex_attention
          liger,padding_free,attn=flex_attention,compile liger,padding_free,attn=flex_attention,max_tokens=16384)

stage() {
  case $1 in
    env)
      nvidia-smi -L || true
      $PYTHON - <<'EOF'
import importlib.metadata as m, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")
for name in ("transformers", "peft", "trl", "accelerate", "datasets", "liger-kernel", "triton", "tokenizers"):
    try:
        print(name, m.version(name))
    except m.PackageNotFoundError:
        print(name, "missing")
EOF
      ;;
    tests) $PYTHON -m pytest -q -m cuda tests -p no:cacheprovider --timeout 600 ;;
    lora-1.7b) bench lora-1.7b --shape smollm2-1.7b --modes lora --checkpointing --variants "${VARIANTS[@]}" ;;
    full-1.7b) bench full-1.7b --shape smollm2-1.7b --modes full --variants "${VARIANTS[1]}" "${VARIANTS[3]}" ;;
    lora-360m) bench lora-360m --shape smollm2-360m --modes lora --variants "${VARIANTS[0]}" "${VARIANTS[1]}" ;;
    gguf)
      mkdir -p "$STASH/gguf"
      cp -v "$KIT"/gguf/* "$STASH/gguf/"
      ;;
    demo)
      local gguf=$STASH/$GGUF_NAME
      if [ ! -f "$gguf" ]; then
        cat "$STASH"/gguf/part-* > "$gguf"
        if [ "$(sha256sum "$gguf" | cut -d' ' -f1)" != "$(cat "$STASH/gguf/sha256")" ]; then
          rm -f "$gguf"
          echo "the GGUF parts are not all here yet (run the gguf stage with each part first)"
          return 1
        fi
      fi
      local start=$SECONDS
      $PYTHON -m chattune train configs/gsm8k-demo.yaml --set "model=$gguf" --set output_dir=/tmp/chattune-kit/demo \
        --overwrite_output_dir
      echo "demo: $((SECONDS - start)) s end to end (GGUF conversion included)"
      ;;
    smoke)
      $PYTHON bench/train_speed.py --device "${KIT_DEVICE:-cuda}" --shape tiny --rows 40 --batch 4 --max-length 256 \
        --steps 3 --modes lora --variants padding_free max_tokens=512 --keep-models "$STASH/models" \
        --out "$OUT/smoke.json"
      ;;
    *) echo "unknown stage $1"; return 2 ;;
  esac
}

run() {
  OUT=${OUT:-runs/gpu_kit}
  mkdir -p "$OUT" "$STASH"
  export OUT PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
  # wheels and tokenizer travel in the first call; later calls on the still-warm machine find them in $STASH
  if [ "${KIT_INSTALL:-1}" = 1 ] && [ ! -f "$STASH/site/.installed" ] && compgen -G "$KIT/wheels/*.whl" > /dev/null
  then
    $PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$STASH/site" \
      "$KIT"/wheels/*.whl || exit 1
    touch "$STASH/site/.installed"  # once per machine: later calls find it while the machine stays warm
  fi
  if [ -d "$KIT/tokenizer" ]; then rm -rf "$STASH/tokenizer" && cp -r "$KIT/tokenizer" "$STASH/tokenizer"; fi
  if [ "${KIT_INSTALL:-1}" = 1 ] && [ -d "$STASH/site" ]; then export PYTHONPATH=$STASH/site:$PWD; fi
  if [ -d "$STASH/tokenizer" ]; then export CHATTUNE_TOKENIZER_DIR=$STASH/tokenizer; fi
  local deadline=${KIT_DEADLINE_S:-540} summary=()
  for name in "$@"; do
    if ((SECONDS > deadline - 60)); then
      summary+=("$name: skipped (deadline)")
      continue
    fi
    local start=$SECONDS
    echo "=== $name"
    # cut at the deadline (exit 124), so the call still returns its summary and what was written under $OUT
    timeout -k 10 $((deadline - SECONDS)) "$0" _stage "$name" 2>&1 | tee "$OUT/$name.log"
    summary+=("$name: exit ${PIPESTATUS[0]}, $((SECONDS - start)) s")
  done
  echo "=== summary"
  for line in "${summary[@]}"; do echo "$line"; done
  for name in "$@"; do  # the benchmarks' tables, last, where the reply's tail shows them
    [ -f "$OUT/$name.log" ] && grep -A40 "shape on" "$OUT/$name.log" | grep -v "^wrote" || true
  done
}

case ${1:-} in
  prepare) prepare ;;
  run) shift; run "$@" ;;
  _stage) stage "$2" ;;  # one stage, in its own process (run's time limit)
  *) sed -n '2,/^set /p' "$0" | grep '^#'; exit 2 ;;
esac
