# spike2loihi: the quick start is `make demo` and `make test`.
# Both build .venv (CPython 3.10, Lava's only interpreter) from requirements.lock
# when it is missing or older than the lock file.
SHELL := /bin/bash
VENV := .venv
STAMP := $(VENV)/.installed
PY := $(VENV)/bin/python
DEMO_CKPT := examples/demo/spikegpt-demo.pth
PIP_VERSION := 24.2

.PHONY: venv demo test bench lock clean-venv

venv: $(STAMP)

$(STAMP): requirements.lock setup.cfg pyproject.toml .ci/make_venv.sh
	bash .ci/make_venv.sh $(VENV) $(PIP_VERSION) && touch $(STAMP)

DEMO_MODEL := build/spikegpt-demo.s2l

demo: $(STAMP)
	$(VENV)/bin/spike2loihi inspect $(DEMO_CKPT)
	$(VENV)/bin/spike2loihi run $(DEMO_CKPT) --backend torch --prompt "The for statement" \
		--max-new-tokens 300 --temperature 0.8 --top-p 0.9 --seed 0
	$(VENV)/bin/spike2loihi convert $(DEMO_CKPT) -o $(DEMO_MODEL) --calib examples/demo/calib.txt \
		--report build/conversion-report.json --plot build/conversion-report.png
	$(VENV)/bin/spike2loihi run $(DEMO_MODEL) --backend lava-sim --prompt "The for statement" \
		--max-new-tokens 80 --temperature 0.8 --top-p 0.9 --seed 0 --compare-emulator

test: $(STAMP)
	$(PY) -m pytest -q tests

bench: $(STAMP)
	$(PY) benchmarks/bench_reference.py
	$(PY) benchmarks/bench_convert.py
	$(PY) benchmarks/bench_lava.py

lock:
	@py="$$(bash .ci/find_python310.sh)" || exit 1; rm -rf /tmp/s2l-lock && "$$py" -m venv /tmp/s2l-lock && \
	/tmp/s2l-lock/bin/pip install -q pip==$(PIP_VERSION) && \
	/tmp/s2l-lock/bin/pip install -q lava-nc==0.10.0 lava-dl==0.6.0 onnx onnxruntime click pytest \
		spikingjelly==0.0.0.0.14 safetensors tokenizers pyyaml && \
	/tmp/s2l-lock/bin/pip freeze > requirements.lock.new && echo wheel==0.45.1 >> requirements.lock.new && echo argparse==1.4.0 >> requirements.lock.new && mv requirements.lock.new requirements.lock

clean-venv:
	rm -rf $(VENV)
