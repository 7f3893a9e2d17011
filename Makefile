# huren — the two commands: `make run` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export HUREN_DATA_DIR ?= $(CURDIR)/data

.PHONY: run test lint typecheck venv bench bench-imaging clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "需要 $(PYTHON)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## make run: install, migrate an SQLite database under ./data, load demo data (with DICOM studies behind
## the exam reports), serve HTTP on :8000 and DICOM (C-ECHO/STORE/FIND/MOVE/GET, AE title HUREN) on :11112
## (HUREN_DICOM_PORT=… to change it)
HUREN_DICOM_PORT ?= 11112
run: $(STAMP)
	mkdir -p -m 700 "$(HUREN_DATA_DIR)"
	$(BIN)/huren db upgrade
	$(BIN)/huren demo --if-empty
	HUREN_DICOM_PORT=$(HUREN_DICOM_PORT) $(BIN)/huren serve

## make test: ruff, mypy, pytest on every core (TEST_WORKERS=0 runs it in one process)
TEST_WORKERS ?= auto
test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check huren tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

## make bench-imaging: huren against Debian's Orthanc on the same DICOM corpus (C-STORE, WADO-URI, QIDO-RS)
bench-imaging: $(STAMP)
	$(BIN)/python bench/imaging.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
