# Two commands on a fresh machine: `make demo` and `make test`.
# Each creates .venv if missing and installs torch==2.13.0 (CPU build from local disk) first,
# then the project with pinned dependencies; a second run skips installation.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.netbudget-installed
FASHION_DIR := /usr/share/datasets/fashion-mnist

.PHONY: demo test test-fast data install clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test]'
	$(BIN)/python -c "import torch, sys; sys.exit('CUDA build of torch installed: ' + torch.version.cuda) if torch.version.cuda else print('torch', torch.__version__, 'CPU build')"
	touch $(STAMP)

install: $(STAMP)

# Fashion-MNIST comes from the Debian package dataset-fashion-mnist; best effort where apt exists.
data:
	@if [ ! -f $(FASHION_DIR)/train-images-idx3-ubyte.gz ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	     (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1)) || \
	    echo "warning: could not install dataset-fashion-mnist; fashion-mnist tests will be skipped"; \
	  else \
	    echo "note: fashion-mnist missing; run 'sudo apt-get install dataset-fashion-mnist' to enable it"; \
	  fi; \
	fi

demo: $(STAMP)
	$(BIN)/netbudget demo

test: $(STAMP) data
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
