# Two build targets. The last stage is the default, so:
#   docker build -t merlin-ncf .                    -> gpu (NVIDIA Merlin container, run with --gpus all)
#   docker build --target cpu -t merlin-ncf:cpu .   -> cpu (the pinned, tested stack from requirements/)

# ---------------------------------------------------------------------------------------------
# cpu: python:3.11-slim + requirements/dev.txt, i.e. exactly what `make install` tests against.
# ---------------------------------------------------------------------------------------------
FROM python:3.11-slim AS cpu

# PIP_EXTRA_INDEX_URL: PyPI's Linux torch wheel is a CUDA build (GBs of CUDA libraries); the
# PyTorch CPU index serves torch==2.13.0+cpu, which satisfies the torch==2.13.0 pin and sorts above
# the PyPI wheel. Kept in ENV so a reinstall by `make` inside the container also gets the CPU build.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu \
    PATH=/workspace/ncf/.venv/bin:$PATH

# `make demo` is the default command, and the slim image has no make.
RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /workspace/ncf

# Same layout as `make install`: everything in .venv/, pinned for pip<25. The Makefile then finds
# .venv/.installed (touched last, so newer than requirements/ and pyproject.toml) and reuses it.
RUN python -m venv .venv && pip install 'pip<25'

# requirements/ alone first, so editing the code does not reinstall the stack.
COPY requirements/ requirements/
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements/dev.txt

# The Docker files too: `make test` inside the image checks them.
COPY Makefile pyproject.toml README.md Dockerfile docker-compose.yml ./
COPY contract/ contract/
COPY etl/ etl/
COPY workflows/ workflows/
COPY training/ training/
COPY serving/ serving/
COPY tests/ tests/
COPY notebooks/ notebooks/
COPY feature_specs/ feature_specs/
RUN pip install --no-deps -e . && touch .venv/.installed

CMD ["make", "demo"]

# ---------------------------------------------------------------------------------------------
# gpu (default): NVIDIA's Merlin PyTorch container already ships NVTabular 23.08, cuDF, dask-cuda
# and a CUDA PyTorch built for it. Nothing of that is re-resolved: the project installs with
# --no-deps, and the few small extras it needs are installed with the image's core packages
# pinned to the versions the image ships.
# ---------------------------------------------------------------------------------------------
FROM nvcr.io/nvidia/merlin/merlin-pytorch:23.08 AS gpu

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /workspace/ncf

# Extras the project imports that the Merlin image may lack (matplotlib capped as in
# requirements/cpu.txt). The constraints file freezes the image's GPU stack (numpy, cuDF, torch,
# dask, NVTabular, ...) at the versions it ships, so resolving the extras cannot upgrade any of it.
RUN python -m pip list --format=freeze \
        | { grep -iE '^(numpy|pandas|pyarrow|numba|protobuf|torch|cudf|cupy[-a-z0-9]*|rmm|dask|distributed|dask-cuda|dask-cudf|nvtabular|merlin-[a-z]+)==' || true; } \
        > /tmp/merlin-constraints.txt \
    && python -m pip install -c /tmp/merlin-constraints.txt \
        pyyaml tqdm 'matplotlib<3.10' nbclient ipykernel tensorboard \
    && rm /tmp/merlin-constraints.txt

# The code last, installed without dependencies (pyproject.toml declares none anyway).
# Fitted workflows are saved inside their data folder, which docker-compose.yml bind-mounts.
COPY pyproject.toml README.md ./
COPY contract/ contract/
COPY etl/ etl/
COPY workflows/ workflows/
COPY training/ training/
COPY serving/ serving/
COPY notebooks/ notebooks/
COPY feature_specs/ feature_specs/
RUN python -m pip install --no-deps -e .

CMD ["python", "-m", "training", "--help"]
