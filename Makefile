# Two commands on a fresh machine: `make demo` (whole pipeline on built-in synthetic data)
# and `make test`. Everything installs into .venv/ from requirements/ (pip<25 is required).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RAW := data/raw/synthetic/ratings.csv
DATA := data/synthetic
RUN := runs/demo

.PHONY: install demo test lint mutation bench bench-quick clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements/cpu.txt requirements/dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q 'pip<25'
	$(BIN)/pip install -q -r requirements/dev.txt
	$(BIN)/pip install -q --no-deps -e . --config-settings editable_mode=compat
	touch $@

$(RAW): | install
	$(BIN)/python -m etl synthetic --output $(RAW)

demo: install $(RAW)
	$(BIN)/python -m etl prepare --input $(RAW) --output $(DATA) --overwrite
	rm -rf $(RUN)
	$(BIN)/python -m training --data $(DATA) --checkpoint_dir $(RUN)/checkpoints --log_path $(RUN)/log.jsonl
	$(BIN)/python -m training.recommend --checkpoint $(RUN)/checkpoints/model.pth \
		--data $(DATA) --users 1,2,3 --topk 5 --output $(RUN)/recommendations.csv

# The layering rules (contract below etl and training) are part of the tests.
test: install
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# Mutation testing of the loop's in-process part and its choice, the tasks, ranking, sizing, the models, the user split
# and the contract's hold-out rules;
# survivors are reviewed in tests/MUTATION.md. Slow (about 40 minutes on 2 cores): not part of `make test`.
mutation: install
	$(BIN)/mutmut run
	$(BIN)/mutmut results

bench: install
	$(BIN)/python -m bench

bench-quick: install
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) data runs checkpoints mutants
