# dcpipe: `make run` runs the main job on the embedded default, `make test` runs the tests.
# Both create .venv once (TensorFlow, then Horovod built against it, then dcpipe) and reuse it.
VENV      ?= .venv
PYTHON    := $(VENV)/bin/python
STAMP     := $(VENV)/.dcpipe-installed
WORKDIR   ?= dcpipe-work
PYTEST_ARGS ?=

.PHONY: venv run test bench clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml deploy/install.sh
	bash deploy/install.sh $(VENV) test
	touch $@

run: $(STAMP)
	$(VENV)/bin/dcpipe run --workdir $(WORKDIR)

test: $(STAMP)
	$(PYTHON) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(WORKDIR) .pytest_cache
