# fastssl: `make demo` runs the embedded default end to end, `make test` runs the tests.
# Both install first; `make install` is idempotent (a stamp file records a finished install).
VENV     := .venv
PY       := $(VENV)/bin/python
PIP      := $(VENV)/bin/pip
STAMP    := $(VENV)/.fastssl-installed
# The tested pair; pip takes them from the local wheel cache where one exists.
TORCH    := torch==2.14.1 torchvision==0.29.1
# What ffcv's C extension compiles against (its maintainers' list).
SYS_PKGS := libturbojpeg0-dev libopencv-dev pkg-config
DEMO_DIR ?= demo_out

.PHONY: install system-packages test demo demo-images benchmark clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@$(MAKE) --no-print-directory system-packages
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q $(TORCH)
	$(PY) scripts/requirements.py --except ffcv > $(VENV)/requirements.txt
	$(PIP) install -q -r $(VENV)/requirements.txt pytest
	@# ffcv asks for opencv-python; opencv-contrib-python-headless (above) provides the same
	@# cv2 without GUI libraries and with the contrib modules, so ffcv goes in without deps.
	$(PIP) install -q --no-deps --no-build-isolation "$$($(PY) scripts/requirements.py --only ffcv)"
	$(PIP) install -q --no-deps --no-build-isolation -e .
	$(PY) -c "import ffcv.libffcv, cv2, torch, writers, loaders, fastssl"
	touch $(STAMP)

system-packages:
	@if dpkg -s $(SYS_PKGS) >/dev/null 2>&1; then exit 0; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYS_PKGS); \
	else \
		echo "error: ffcv needs system packages; run: sudo apt-get install -y $(SYS_PKGS)" >&2; \
		exit 1; \
	fi

test: install
	$(PY) -m pytest -q tests

demo: install
	DEMO_DIR=$(DEMO_DIR) bash scripts/demo.sh

demo-images: install
	DEMO_DIR=$(DEMO_DIR)_images bash scripts/demo_images.sh

benchmark: install
	$(PY) benchmarks/loader.py

clean:
	rm -rf $(DEMO_DIR) $(DEMO_DIR)_images .pytest_cache
