# The README's two commands: `make run` (every suite on the model, reports in reports/out)
# and `make test` (lint, the guest images, the suites on the model and the QEMU targets,
# and the framework's own tests). Each sets itself up on a bare machine: system packages
# (apt-get when root), then a virtual environment in .venv.

VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.apflab-installed
OUT    ?= reports/out

# CHECK:package pairs (see targets/host-packages.sh): what the model targets need ...
HOST_PACKAGES := python3:python3 venv:python3-venv git:git
# ... and what the QEMU targets and their images need.
TARGET_PACKAGES := qemu-system-aarch64:qemu-system-arm aarch64-linux-gnu-gcc:gcc-aarch64-linux-gnu \
                   dpkg-source:dpkg-dev /usr/include/openssl/evp.h:libssl-dev gcc:gcc make:make \
                   chromium:chromium
# qemu-linux: sshd for the local migration host; the cross libc for the static async_pf and
# apflab-vmm; the ssh client for the KVM board path (labgrid's SSHDriver).
TARGET_PACKAGES += /usr/sbin/sshd:openssh-server /usr/aarch64-linux-gnu/lib/libc.a:libc6-dev-arm64-cross \
                   ssh:openssh-client
# apflab's TF-A build applies its patch to a copy of Debian's source.
TARGET_PACKAGES += patch:patch

# The targets `make test` runs the suites on (qemu-kvm: the agent under real KVM in a nested L1).
TEST_TARGETS := --target model --target model-kvm-v4 --target qemu-tfa --target qemu-tfa-el2 --target qemu \
                --target qemu-linux --target qemu-kvm

.PHONY: run test setup target-packages images lint bench mutate clean

run: setup
	$(PY) -m apflab run --out $(OUT)

# APFLAB_RUN_OUT: the framework's tests read the run's results (tests/test_kvm_agrees.py).
test: setup lint images
	$(PY) -m apflab run --out $(OUT) $(TEST_TARGETS)
	APFLAB_RUN_OUT=$(OUT) $(PY) -m pytest tests

setup: $(STAMP)

$(STAMP): pyproject.toml
	@targets/host-packages.sh $(HOST_PACKAGES)
	python3 -c 'import sys; assert sys.version_info >= (3, 10), "apflab needs Python 3.10 or newer"'
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

target-packages:
	@targets/host-packages.sh $(TARGET_PACKAGES)

# Guest images (cached in ~/.cache/apflab; rebuilt when their sources change); kvm: the
# nested KVM host with apflab-vmm (docs/vmm-channel.md).
images: setup target-packages
	$(PY) -m apflab images agent tfa linux kvm

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: setup images
	$(PY) bench/suite_speed.py
	$(PY) bench/real_targets.py

# Mutation testing of the model, the ABI and the profiles (docs/mutation.md): long, so
# not part of `make test`. MODULE=apflab/model/apf.py mutates one module; SAMPLE=4 every
# fourth mutant (an estimate); TIMEOUT=seconds per mutant; RESUME=1 goes on after a stop;
# RETRY=1 runs the last session's survivors again (after new cases).
mutate: setup
	$(PY) mutation/run.py $(if $(MODULE),--module $(MODULE)) $(if $(SAMPLE),--sample $(SAMPLE)) \
		$(if $(TIMEOUT),--timeout $(TIMEOUT)) $(if $(RESUME),--resume) $(if $(RETRY),--retry-survivors)

clean:
	rm -rf $(OUT) build *.egg-info
