# fastssl: `make demo` runs the embedded default end to end, `make test` runs the tests.
# Both install first; `make install` is idempotent (a stamp file records a finished install).
VENV     := .venv
PY       := $(VENV)/bin/python
PIP      := $(VENV)/bin/pip
STAMP    := $(VENV)/.fastssl-installed
# The tested pair; pip takes them from the local wheel cache where one exists.
TORCH    := torch==2.14.1 torchvision==0.29.1
# What building ffcv's C extension needs (Debian/Ubuntu names); installing needs none of them.
SYS_PKGS := g++ pkg-config libturbojpeg0-dev libopencv-dev
WHEELHOUSE        ?= dist/wheelhouse
WHEELHOUSE_TORCH  ?= 1
WHEELHOUSE_PYTHON ?= $(shell python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
# A complete wheelhouse (it holds fastssl's own wheel) makes every install step offline.
FROM     := --find-links $(WHEELHOUSE) $(if $(wildcard $(WHEELHOUSE)/fastssl-*.whl),--no-index)
# the ffcv wheel of the version pyproject.toml requires (an older patch revision is rebuilt)
FFCV_VERSION := $(shell sed -n 's/.*"ffcv==\([^"]*\)".*/\1/p' pyproject.toml)
FFCV_WHL := $(wildcard $(WHEELHOUSE)/ffcv-$(FFCV_VERSION)-*.whl)
DEMO_DIR ?= demo_out

.PHONY: install offline-wheelhouse-check ffcv-wheel wheelhouse gpu-check-bundle system-packages test test-e2e demo demo-images \
	benchmark benchmark-deps benchmark-data clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@$(MAKE) --no-print-directory ffcv-wheel
	@$(MAKE) --no-print-directory offline-wheelhouse-check
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q $(FROM) --upgrade setuptools wheel
	$(PIP) install -q $(FROM) $(TORCH)
	$(PIP) install -q $(FROM) --no-build-isolation -e '.[test]'
	$(PY) -c "import ffcv.libffcv, cv2, torch, writers, loaders, fastssl"
	touch $(STAMP)

# An offline install needs the wheelhouse's torch and wheels for this python3; without them
# pip names a distribution it cannot find (numpy, torch), not why.
PY3_VERSION := $(shell python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
offline-wheelhouse-check:
	@if [ -z "$(filter --no-index,$(FROM))" ]; then exit 0; fi; \
	if ! ls $(WHEELHOUSE)/torch-*.whl >/dev/null 2>&1; then \
		echo "error: $(WHEELHOUSE) holds no torch wheel (built with WHEELHOUSE_TORCH=0):" \
		     "install with pip into an environment that has torch (docs/install.md," \
		     "Clusters and air-gapped GPU nodes)" >&2; \
		exit 2; \
	fi; \
	if ls $(WHEELHOUSE)/numpy-*.whl >/dev/null 2>&1 && \
	   ! ls $(WHEELHOUSE)/numpy-*-cp$(subst .,,$(PY3_VERSION))-*.whl >/dev/null 2>&1; then \
		echo "error: $(WHEELHOUSE) holds wheels for another Python than this python3" \
		     "($(PY3_VERSION)): build it for $(PY3_VERSION) (WHEELHOUSE_PYTHON=$(PY3_VERSION) make wheelhouse)" >&2; \
		exit 2; \
	fi

# The self-contained ffcv wheel: built once, then every install takes it from the wheelhouse.
ffcv-wheel:
	@if [ -n "$(FFCV_WHL)" ]; then exit 0; fi; \
	$(MAKE) --no-print-directory system-packages && \
	python3 scripts/build_wheelhouse.py --ffcv-only --out $(WHEELHOUSE)

# Everything an offline machine needs: WHEELHOUSE_TORCH=0 leaves torch out,
# WHEELHOUSE_PYTHON=3.12 targets another interpreter (docs/install.md).
wheelhouse: ffcv-wheel
	python3 scripts/build_wheelhouse.py --out $(WHEELHOUSE) \
		--python-version $(WHEELHOUSE_PYTHON) \
		$(if $(filter 0,$(WHEELHOUSE_TORCH)),--no-torch,--torch "$(TORCH)")

# What benchmarks.gpu_check needs on a GPU node besides the repository (docs/install.md).
gpu-check-bundle: install
	$(PY) scripts/gpu_check_bundle.py --out dist/gpu_check --wheelhouse $(WHEELHOUSE)

system-packages:
	@if command -v c++ >/dev/null && pkg-config --exists libturbojpeg opencv4 2>/dev/null; \
	then exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYS_PKGS); \
	else \
		echo "error: building the ffcv wheel needs $(SYS_PKGS); either install them" \
		     "(sudo apt-get install -y $(SYS_PKGS)), or run 'make wheelhouse' on a machine" \
		     "that has them and copy its $(WHEELHOUSE)/ here: 'make install' then needs" \
		     "neither root nor a compiler (docs/install.md)" >&2; \
		exit 1; \
	fi

# `make test` leaves the whole-program runs (marker e2e: the demo, the benchmarks' smoke runs, the
# slowest training runs) and the slowest other checks to `make test-e2e`; CI runs both.
test: install
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -m 'not e2e' --durations=15 tests

test-e2e: install
	$(PY) -m pytest -q -m e2e --durations=15 tests

demo: install
	DEMO_DIR=$(DEMO_DIR) bash scripts/demo.sh

demo-images: install
	DEMO_DIR=$(DEMO_DIR)_images bash scripts/demo_images.sh

benchmark: install
	$(PY) -m benchmarks.loader

# Optional baselines, not needed by make test: NVIDIA DALI for method (g), from PyPI (~1 GB installed).
benchmark-deps: install
	$(PIP) install -q --find-links $(WHEELHOUSE) --no-build-isolation -e '.[test,benchmark]'

# Optional material for benchmarks.proposals: OpenCV's sample vtest.avi (a still camera over a
# square, people crossing it), from the samples/data folder of OpenCV's source release on PyPI
# (a 95 MB download; the file is 8 MB). Use: OPENCV_SAMPLES_DATA_PATH=$(OPENCV_SAMPLES) ...
OPENCV_SDIST = opencv-python-headless-4.10.0.84
OPENCV_SAMPLES = build/opencv-samples
benchmark-data:
	mkdir -p $(OPENCV_SAMPLES)
	url=$$(curl -fsS https://pypi.org/simple/opencv-python-headless/ | grep -o \
	    'https://files.pythonhosted.org[^"#]*/$(OPENCV_SDIST).tar.gz' | head -1) && \
	    curl -fsSL "$$url" | tar xz -C $(OPENCV_SAMPLES) --strip-components=4 \
	    $(OPENCV_SDIST)/opencv/samples/data/vtest.avi

clean:
	rm -rf $(DEMO_DIR) $(DEMO_DIR)_images .pytest_cache
