# Set-up and everyday commands. Every target creates .venv and installs the locked
# versions first, so `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo_out

.PHONY: install test lint demo lock clean

install: $(STAMP)

$(STAMP): requirements.lock setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24" "setuptools>=70" wheel
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP) lint
	$(BIN)/python -m pytest -q

# Until the trainer and evaluation land, the demo is synth -> preprocess.
demo: $(STAMP)
	$(BIN)/fewframes synth --out $(DEMO_DIR)/raw --kind frame --videos 400 --shards 4 --seed 7 --classes 50
	$(BIN)/fewframes preprocess --input '$(DEMO_DIR)/raw/train*.tfrecord' --output $(DEMO_DIR)/dataset \
		--format parquet,tfrecord --view every_n:10 --teacher-view --num-classes 50 --overwrite

# Re-resolve setup.py's ranges into requirements.lock.
lock:
	rm -rf /tmp/fewframes-lock && $(PYTHON) -m venv /tmp/fewframes-lock
	/tmp/fewframes-lock/bin/python -m pip install --quiet --upgrade pip
	/tmp/fewframes-lock/bin/python -m pip install --quiet -e '.[test]'
	{ head -2 requirements.lock; /tmp/fewframes-lock/bin/python -m pip freeze --exclude-editable; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:
	rm -rf $(VENV) $(DEMO_DIR) build *.egg-info
