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
	$(BIN)/lint-imports

test: $(STAMP) lint
	$(BIN)/python -m pytest -q

# The whole story on generated data: synth -> preprocess -> train teacher, student,
# distilled student -> evaluate (Beam) -> compare. Re-running resumes.
demo: $(STAMP)
	$(BIN)/fewframes demo --workdir $(DEMO_DIR)

# Re-resolve setup.py's ranges into requirements.lock.
lock:
	rm -rf /tmp/fewframes-lock && $(PYTHON) -m venv /tmp/fewframes-lock
	/tmp/fewframes-lock/bin/python -m pip install --quiet --upgrade pip
	/tmp/fewframes-lock/bin/python -m pip install --quiet -e '.[test]'
	{ head -2 requirements.lock; /tmp/fewframes-lock/bin/python -m pip freeze --exclude-editable; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:
	rm -rf $(VENV) $(DEMO_DIR) build *.egg-info
