# Two set-up commands (README): `make run` runs the whole workflow on the built-in tiny configuration,
# `make test` runs the test suite. Both install what they need into .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 2
# llama-cpp-python is built from source: one CPU variant, no tools, no multimodal library (minutes, not tens).
LLAMA_CMAKE_ARGS := -DLLAVA_BUILD=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: run test install report lint clean llama-server

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip==25.3
	# torch first and pinned: an unpinned torch pulls several GB of CUDA.
	$(BIN)/python -m pip install torch==2.13.0
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$(CORES) \
		$(BIN)/python -m pip install -r requirements.lock
	$(BIN)/python -m pip install --no-deps -e .
	# The sandbox isolates untrusted code with bubblewrap when it can (see src/abacus_repro/sandbox).
	command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap) \
		|| echo "warning: bubblewrap not installed; the sandbox falls back to weaker isolation"; }
	# A one-node SLURM cluster on localhost (cluster/slurm-localhost.sh) runs the workflow through the SLURM
	# profile in the tests; Debian's packages, installed when missing and we are root.
	command -v slurmctld >/dev/null && command -v munged >/dev/null || { [ "$$(id -u)" = 0 ] && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends munge slurmctld slurmd slurm-client) \
		|| echo "warning: SLURM not installed; the SLURM integration test will skip"; }
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --configfile config/config.yaml
	$(MAKE) --no-print-directory report

# The HTML report is rebuilt only when the workflow produced something new.
report: results/report.html
results/report.html: results/provenance/manifest.json
	$(BIN)/snakemake --cores $(CORES) --configfile config/config.yaml --report $@

test: $(STAMP)
	$(BIN)/python -m pytest -q -ra tests

# llama.cpp's own llama-server (the /infill endpoint editor plugins call), built from the llama.cpp source that the
# pinned llama-cpp-python vendors, so it reads the GGUFs exactly as the tests' llama.cpp does. Optional: about 10
# minutes on 2 cores; tests/unit/test_export_server.py serves /infill with it when it is there.
LLAMA_CPP_PYTHON := $(shell sed -n 's/^llama-cpp-python==//p' requirements.lock)
LLAMA_SRC := .cache/llama-server/llama_cpp_python-$(LLAMA_CPP_PYTHON)/vendor/llama.cpp
llama-server: $(BIN)/llama-server
$(BIN)/llama-server: requirements.lock | $(STAMP)
	mkdir -p .cache/llama-server
	$(BIN)/python -m pip download --no-deps --no-binary :all: llama-cpp-python==$(LLAMA_CPP_PYTHON) -d .cache/llama-server
	tar -xzf .cache/llama-server/llama_cpp_python-$(LLAMA_CPP_PYTHON).tar.gz -C .cache/llama-server
	cmake -S $(LLAMA_SRC) -B $(LLAMA_SRC)/build -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF \
		-DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
	cmake --build $(LLAMA_SRC)/build --target llama-server -j$(CORES)
	cp $(LLAMA_SRC)/build/bin/llama-server $@

lint: $(STAMP)
	$(BIN)/snakemake --lint
	$(BIN)/ruff check src workflow/scripts tests benchmarks workflow/envs
	$(BIN)/ruff format --check src workflow/scripts tests benchmarks workflow/envs
	$(BIN)/snakefmt --check workflow

clean:
	rm -rf results logs .snakemake benchmarks/rules
