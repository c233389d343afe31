"""Static checks of Dockerfile and docker-compose.yml (no Docker engine is needed or used).

Building the images and running them on GPUs is not covered here; these tests catch what breaks
silently before that: a COPY of a missing path, a renamed target, a compose service without a GPU
or a volume, and commands whose flags the project's own argument parsers would reject.
"""
from __future__ import annotations

import json
import shlex
from pathlib import Path, PurePosixPath

import pytest
import yaml

from etl.__main__ import parser as etl_parser
from etl.prepare import PrepareConfig
from training.args import parse_args as train_parse_args

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
WORKDIR = PurePosixPath("/workspace/ncf")
MERLIN_IMAGE = "nvcr.io/nvidia/merlin/merlin-pytorch:23.08"
MOUNTED = ("data", "workflows", "checkpoints")
SERVICES = ("etl", "train", "jupyter")

# --- Dockerfile --------------------------------------------------------------------------------

def dockerfile_stages(text: str) -> list[dict]:
    """[{name, base, instructions: [(KEYWORD, args)]}] with continuations joined, comments dropped."""
    logical, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "Dockerfile ends inside a line continuation"

    stages = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            assert len(words) in (1, 3), f"unexpected FROM line: {line}"
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append({"name": name, "base": words[0], "instructions": []})
        else:
            assert stages, f"instruction before the first FROM: {line}"
            stages[-1]["instructions"].append((keyword, args))
    return stages


@pytest.fixture(scope="module")
def stages() -> dict[str, dict]:
    parsed = dockerfile_stages(DOCKERFILE.read_text())
    names = [s["name"] for s in parsed]
    assert len(set(names)) == len(names), f"duplicate stage names: {names}"
    return {"order": names, **{s["name"]: s for s in parsed}}


def instructions(stage: dict, keyword: str) -> list[str]:
    return [args for kw, args in stage["instructions"] if kw == keyword]


def copy_sources(stage: dict) -> list[str]:
    sources = []
    for args in instructions(stage, "COPY"):
        words = [w for w in shlex.split(args) if not w.startswith("--")]
        assert len(words) >= 2, f"COPY needs a source and a destination: {args}"
        sources += words[:-1]
    return sources


def run_text(stage: dict) -> str:
    return "\n".join(instructions(stage, "RUN"))


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def test_dockerfile_has_cpu_and_gpu_targets_with_gpu_the_default(stages):
    assert set(stages["order"]) == {"cpu", "gpu"}
    # `docker build .` without --target builds the last stage.
    assert stages["order"][-1] == "gpu"
    assert stages["gpu"]["base"] == MERLIN_IMAGE
    assert stages["cpu"]["base"] == "python:3.11-slim"


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_copy_sources_exist(stages, target):
    sources = copy_sources(stages[target])
    assert {"pyproject.toml", "README.md", "etl/", "training/"} <= set(sources)
    missing = [s for s in sources if not (ROOT / s).exists()]
    assert not missing, f"{target}: COPY sources missing from the repository: {missing}"
    # Never the whole context: that would bake .venv/, data/ and checkpoints/ into the image.
    assert "." not in sources and "./" not in sources


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_project_installed_editable_without_dependencies(stages, target):
    stage = stages[target]
    assert instructions(stage, "WORKDIR")[-1] == str(WORKDIR)
    assert "pip install --no-deps -e ." in run_text(stage)
    # The install runs after everything it packages has been copied.
    kinds = [(kw, args) for kw, args in stage["instructions"] if kw in ("COPY", "RUN")]
    install = max(i for i, (kw, args) in enumerate(kinds) if kw == "RUN" and "--no-deps -e ." in args)
    last_code_copy = max(i for i, (kw, args) in enumerate(kinds)
                         if kw == "COPY" and ("etl/" in args or "training/" in args))
    assert last_code_copy < install


def test_gpu_stage_does_not_re_resolve_the_merlin_stack(stages):
    gpu = stages["gpu"]
    text = run_text(gpu)
    assert "requirements/" not in text and not any("requirements" in s for s in copy_sources(gpu))
    for extra in ("pyyaml", "tqdm", "matplotlib", "nbclient", "ipykernel", "tensorboard"):
        assert extra in text, f"gpu image does not install {extra}"
    # The extras are resolved against the image's own versions of the GPU stack.
    assert "pip install -c " in text
    for pinned in ("numpy", "torch", "cudf", "dask", "nvtabular"):
        assert pinned in text
    assert exec_form(instructions(gpu, "CMD")[-1]) == ["python", "-m", "training", "--help"]


def test_cpu_stage_installs_the_pinned_cpu_stack(stages):
    cpu = stages["cpu"]
    text = run_text(cpu)
    assert "pip install 'pip<25'" in text
    install = next(args for args in instructions(cpu, "RUN") if "-r requirements/dev.txt" in args)
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in install
    assert "apt-get install -y --no-install-recommends make" in text
    assert "rm -rf /var/lib/apt/lists/*" in text
    # requirements/ is copied (and installed) before the code, so code edits keep that layer cached.
    order = [args for kw, args in cpu["instructions"] if kw in ("COPY", "RUN")]
    req_copy = next(i for i, a in enumerate(order) if a.startswith("requirements/"))
    req_install = order.index(install)
    first_code = next(i for i, a in enumerate(order) if a.startswith(("etl/", "training/")))
    assert req_copy < req_install < first_code
    # `make demo` must find the image's environment instead of building .venv/ again at run time.
    assert exec_form(instructions(cpu, "CMD")[-1]) == ["make", "demo"]
    assert "Makefile" in copy_sources(cpu)
    assert "touch .venv/.installed" in text
    assert any("/workspace/ncf/.venv/bin" in env for env in instructions(cpu, "ENV"))


# --- docker-compose.yml ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def command(service: dict) -> list[str]:
    cmd = service["command"]
    return shlex.split(cmd) if isinstance(cmd, str) else list(cmd)


def test_compose_services(compose, stages):
    assert "version" not in compose, "the compose spec has no version key"
    assert set(compose["services"]) == set(SERVICES)
    for name in SERVICES:
        service = compose["services"][name]
        build = service["build"]
        assert (ROOT / build["context"]).resolve() == ROOT
        assert build.get("dockerfile", "Dockerfile") == "Dockerfile"
        assert build["target"] == "gpu" and "gpu" in stages["order"]


@pytest.mark.parametrize("name", SERVICES)
def test_compose_service_gets_all_gpus_shm_and_mounts(compose, name):
    service = compose["services"][name]
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) and d.get("count") == "all"
               for d in devices), devices
    size = str(service["shm_size"]).lower()
    assert size.endswith(("gb", "g")) and float(size.rstrip("gb")) >= 1, size
    mounts = {}
    for volume in service["volumes"]:
        host, container = volume.split(":")[:2]
        mounts[PurePosixPath(container)] = PurePosixPath(host)
    for folder in MOUNTED:
        assert mounts.get(WORKDIR / folder) == PurePosixPath(".") / folder, f"{name}: {folder}/ not mounted"


def etl_commands(compose) -> list[list[str]]:
    argv = command(compose["services"]["etl"])
    assert argv[:2] == ["sh", "-c"] and len(argv) == 3, argv
    steps = [shlex.split(step) for step in argv[2].split("&&")]
    for step in steps:
        assert step[:3] == ["python", "-m", "etl"], step
    return [step[3:] for step in steps]


def test_etl_service_commands_parse(compose):
    steps = [etl_parser().parse_args(step) for step in etl_commands(compose)]
    assert [s.command for s in steps] == ["synthetic", "prepare"]
    synthetic, prepare = steps
    assert prepare.input == synthetic.output
    assert prepare.device == "gpu" and prepare.overwrite
    # Everything it writes lands in the bind mounts, so the train service (and the host) sees it.
    cfg = PrepareConfig(input=prepare.input, output=prepare.output, workflow_dir=prepare.workflow_dir)
    for path, folder in ((synthetic.output, "data"), (cfg.output, "data"), (cfg.workflow_dir, "workflows")):
        assert PurePosixPath(path).parts[0] == folder, path


def test_train_service_runs_torchrun_on_the_etl_output(compose):
    service = compose["services"]["train"]
    argv = command(service)
    prefix = ["torchrun", "--nproc_per_node=gpu", "-m", "training"]
    assert argv[:4] == prefix, argv
    args = train_parse_args(argv[4:])
    _, prepare = (etl_parser().parse_args(step) for step in etl_commands(compose))
    assert args.data == Path(prepare.output)
    assert args.amp
    for path in (args.checkpoint_dir, args.log_path):
        assert path is not None and path.parts[0] == "checkpoints", path
    assert service["depends_on"]["etl"]["condition"] == "service_completed_successfully"


def test_jupyter_service_publishes_8888(compose):
    service = compose["services"]["jupyter"]
    argv = command(service)
    assert argv[:2] == ["jupyter", "lab"]
    assert "--ip=0.0.0.0" in argv and "--port=8888" in argv and "--allow-root" in argv
    published = [str(p).split(":") for p in service["ports"]]
    assert any(p[-1] == "8888" and p[-2] == "8888" for p in published), service["ports"]
    # The server runs without a token, so it must not be reachable from other machines.
    assert all(len(p) == 3 and p[0] == "127.0.0.1" for p in published), service["ports"]
