# nabla: the two commands of the README, each doing its own set-up on a fresh machine.
#   make run    train the default built-in data set (two spirals) on the OpenBLAS backend
#   make test   build everything and run every test (what CI runs)

CARGO ?= cargo
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)

.PHONY: run test deps mpi-deps test-deps cuda-tools lint memcheck

# OpenBLAS (with LAPACK) development files: installed with apt-get when pkg-config cannot find them.
deps:
	@if ! pkg-config --exists openblas 2>/dev/null; then \
	  if command -v apt-get >/dev/null 2>&1; then \
	    echo "make: installing libopenblas-dev and pkg-config (OpenBLAS was not found)"; \
	    $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq libopenblas-dev pkg-config >/dev/null; \
	  else \
	    echo "make: OpenBLAS development files not found and apt-get is not available."; \
	    echo "      Install them and re-run: Fedora 'dnf install openblas-devel pkgconf', Arch 'pacman -S openblas',"; \
	    echo "      openSUSE 'zypper install openblas-devel', macOS 'brew install openblas pkg-config'."; \
	    exit 1; \
	  fi; \
	fi

# MPI for the `mpi` feature (data-parallel training; `make test` builds every feature): OpenMPI's
# compiler wrapper and launcher, and libclang for the bindings rsmpi generates.
mpi-deps:
	@if ! command -v mpicc >/dev/null 2>&1 || ! command -v mpirun >/dev/null 2>&1 || \
	    ! ldconfig -p 2>/dev/null | grep -q 'libclang'; then \
	  if command -v apt-get >/dev/null 2>&1; then \
	    echo "make: installing libopenmpi-dev, openmpi-bin and libclang-dev (MPI was not found)"; \
	    $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq libopenmpi-dev openmpi-bin libclang-dev >/dev/null; \
	  else \
	    echo "make: MPI development files or libclang not found and apt-get is not available."; \
	    echo "      Install them and re-run: Fedora 'dnf install openmpi-devel clang-devel' (then 'module load mpi'),"; \
	    echo "      Arch 'pacman -S openmpi clang', openSUSE 'zypper install openmpi4-devel clang-devel', macOS 'brew install open-mpi llvm'."; \
	    exit 1; \
	  fi; \
	fi

# NVRTC and ptxas from PyPI (CUDA 13, no GPU or driver needed), so that the tests compile the CUDA
# kernels with the backend's own code path and assemble them for sm_90: unpacked into a cache folder.
CUDA_TOOLS ?= $(HOME)/.cache/nabla/cuda-13
CUDA_TOOLS_DIR := $(CUDA_TOOLS)/nvidia/cu13
cuda-tools:
	@if [ ! -e $(CUDA_TOOLS_DIR)/lib/libnvrtc.so.13 ] || [ ! -x $(CUDA_TOOLS_DIR)/bin/ptxas ]; then \
	  command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1 || { \
	    echo "make: installing python3-pip (to fetch NVRTC and ptxas from PyPI)"; \
	    $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3-pip >/dev/null; }; \
	  echo "make: fetching NVRTC and ptxas (CUDA 13) from PyPI into $(CUDA_TOOLS)"; \
	  rm -rf $(CUDA_TOOLS).part && mkdir -p $(CUDA_TOOLS).part && \
	  python3 -m pip download -q --no-deps -d $(CUDA_TOOLS).part 'nvidia-cuda-nvrtc>=13,<14' 'nvidia-cuda-nvcc>=13,<14' && \
	  python3 -c 'import sys, zipfile; [zipfile.ZipFile(w).extractall(sys.argv[1], [m for m in zipfile.ZipFile(w).namelist() if "nvrtc" in w or m.endswith("bin/ptxas")]) for w in sys.argv[2:]]' $(CUDA_TOOLS).part $(CUDA_TOOLS).part/*.whl && \
	  chmod +x $(CUDA_TOOLS).part/nvidia/cu13/bin/ptxas && rm -f $(CUDA_TOOLS).part/*.whl && \
	  rm -rf $(CUDA_TOOLS) && mv $(CUDA_TOOLS).part $(CUDA_TOOLS); \
	fi

# What the tests need beyond the build: valgrind (memcheck of the unsafe code).
test-deps:
	@if ! command -v valgrind >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1; then \
	    echo "make: installing valgrind (the memory checker the tests run the unsafe kernels under)"; \
	    $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq valgrind >/dev/null; \
	  else \
	    echo "make: valgrind not found and apt-get is not available; install valgrind (dnf/pacman/zypper/brew)."; \
	    exit 1; \
	  fi; \
	fi

run: deps
	$(CARGO) run --release -p nabla-cli -- train $(ARGS)

test: deps mpi-deps test-deps cuda-tools
	LD_LIBRARY_PATH=$(CUDA_TOOLS_DIR)/lib$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH} NABLA_REQUIRE_NVRTC=1 NABLA_REQUIRE_BINARY=1 \
	  NABLA_PTXAS=$(CUDA_TOOLS_DIR)/bin/ptxas $(CARGO) test --workspace --all-features
	# The OpenBLAS kernels once more in their baseline copies (no AVX, no FMA), as on an older CPU.
	NABLA_SIMD=generic $(CARGO) test -p nabla-openblas --lib
	# The unsafe kernels and the plugin boundary under valgrind's memcheck: 0 errors.
	CARGO=$(CARGO) scripts/memcheck.sh
	$(CARGO) build --workspace --all-targets
	@if $(CARGO) clippy --version >/dev/null 2>&1; then $(CARGO) clippy --workspace --all-targets --all-features -- -D warnings; \
	 else echo "make: clippy not installed, lint skipped (rustup component add clippy)"; fi
	@if $(CARGO) fmt --version >/dev/null 2>&1; then $(CARGO) fmt --all -- --check; \
	 else echo "make: rustfmt not installed, format check skipped (rustup component add rustfmt)"; fi
	# Every crate meant for crates.io packages and builds from its package alone (the example
	# plugin is publish = false); the workspace's crates stand in for the unpublished ones. Cargo
	# keeps those stand-ins, unpacked and compiled, by name and version only: a rerun after a
	# change would build the stale copies, so both go first (its own target folder; the unpacked
	# nabla-* of cargo's path registries, the `-HASH` folders).
	rm -rf target/package-verify "$${CARGO_HOME:-$$HOME/.cargo}"/registry/src/-*/nabla-*
	$(CARGO) package --workspace --exclude nabla-plugin-example --allow-dirty --target-dir target/package-verify

memcheck: deps test-deps
	CARGO=$(CARGO) scripts/memcheck.sh

lint:
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings
