"""What the Docker files do, checked without a Docker engine: every path they copy exists and is
sent in the build context, every package the project installs is copied before the install,
every command parses with the project's own parsers or names a real Make target, and the compose
services share their data through bind mounts. Building and running on GPUs is not covered here.
"""
from __future__ import annotations

import fnmatch
import json
import re
import shlex
from pathlib import Path, PurePosixPath

import pytest
import tomllib
import yaml

from etl.__main__ import parser as etl_parser
from etl.prepare import PrepareConfig
from serving.args import parser as serving_parser
from serving.export import parser as export_parser
from training.args import parse_args as train_parse_args

ROOT = Path(__file__).resolve().parents[2]


def logical_lines(text: str) -> list[str]:
    """Dockerfile instructions with continuations joined and comments dropped."""
    lines, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not pending and not line):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    assert not pending, "Dockerfile ends inside a line continuation"
    return lines


def parse_dockerfile(text: str) -> list[dict]:
    stages = []
    for line in logical_lines(text):
        keyword, _, args = line.partition(" ")
        if keyword.upper() == "FROM":
            words = args.split()
            stages.append({"base": words[0], "name": words[2] if len(words) == 3 else None, "steps": []})
        else:
            assert stages, f"instruction before the first FROM: {line}"
            stages[-1]["steps"].append((keyword.upper(), args.strip()))
    return stages


@pytest.fixture(scope="module")
def stages() -> dict[str, dict]:
    parsed = parse_dockerfile((ROOT / "Dockerfile").read_text())
    return {"default": parsed[-1], **{s["name"]: s for s in parsed}}


def copies(stage) -> list[list[str]]:
    """The source paths of each COPY (flags and the destination dropped)."""
    return [[w for w in shlex.split(args) if not w.startswith("--")][:-1] for kw, args in stage["steps"] if kw == "COPY"]


def dockerignored(path: str) -> bool:
    ignored = False
    for pattern in (ROOT / ".dockerignore").read_text().split():
        negate = pattern.startswith("!")
        if fnmatch.fnmatch(path.rstrip("/"), pattern.lstrip("!").rstrip("/")):
            ignored = not negate
    return ignored


def installed_packages() -> set[str]:
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    return {p.split(".")[0] for p in packages}


def test_the_default_build_is_the_merlin_gpu_image(stages):
    assert stages["default"]["base"].startswith("nvcr.io/nvidia/merlin/merlin-pytorch:")


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_copied_paths_exist_and_are_in_the_build_context(stages, target):
    for sources in copies(stages[target]):
        for source in sources:
            assert (ROOT / source).exists(), f"{target}: COPY {source} does not exist"
            assert not dockerignored(source) or source.startswith("workflows"), f"{target}: {source} is .dockerignored"
            assert source not in (".", "./"), "copying the whole context bakes .venv/ and data/ into the image"


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_every_installed_package_is_copied_before_the_install(stages, target):
    steps = stages[target]["steps"]
    install = max(i for i, (kw, args) in enumerate(steps) if kw == "RUN" and re.search(r"pip install.* -e \.", args))
    copied = {PurePosixPath(s).parts[0] for i, (kw, _) in enumerate(steps[:install]) if kw == "COPY"
              for s in [w for w in shlex.split(steps[i][1]) if not w.startswith("--")][:-1]}
    missing = (installed_packages() | {"pyproject.toml"}) - copied
    assert not missing, f"{target}: `pip install -e .` runs before {missing} is copied"


# The requirement files each image installs: the CPU image the tested stack (dev.txt, which pulls in
# cpu.txt); the GPU image none, its stack is the Merlin container's own, installed --no-deps.
INSTALLED_REQUIREMENTS = {"cpu": ["requirements/dev.txt"], "gpu": []}


def included(requirements: Path) -> list[Path]:
    """The files a requirements file pulls in with -r/-c lines, recursively, itself first."""
    found = [requirements]
    for line in requirements.read_text().splitlines():
        match = re.match(r"\s*(?:-[rc]|--requirement|--constraint)[ =](\S+)", line)
        if match:
            include = requirements.parent / match.group(1)
            assert include.is_file(), f"{requirements.relative_to(ROOT)}: {match.group(0).strip()} does not exist"
            found += included(include)
    return found


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_the_requirement_files_an_image_installs_exist_and_are_copied_before_the_install(stages, target):
    steps = stages[target]["steps"]
    installs = [(i, name) for i, (kw, args) in enumerate(steps) if kw == "RUN"
                for name in re.findall(r"-[rc] (requirements/\S+)", args)]
    runs = [args for kw, args in steps if kw == "RUN"]
    assert [name for _, name in installs] == INSTALLED_REQUIREMENTS[target], f"{target} runs {runs}"
    for i, name in installs:
        copied = {PurePosixPath(s) for kw, args in steps[:i] if kw == "COPY"
                  for s in [w for w in shlex.split(args) if not w.startswith("--")][:-1]}
        for path in included(ROOT / name):
            relative = PurePosixPath(path.relative_to(ROOT).as_posix())
            assert copied & {relative, *relative.parents}, f"{target}: {relative} is not copied before `RUN ... {name}`"


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_default_command_runs(stages, target):
    argv = json.loads(next(args for kw, args in reversed(stages[target]["steps"]) if kw == "CMD"))
    if argv[0] == "make":
        assert set(argv[1:]) <= make_targets()
    else:
        assert argv[:3] == ["python", "-m", "training"]
        with pytest.raises(SystemExit) as done:  # --help exits 0 after printing usage
            train_parse_args(argv[3:])
        assert done.value.code == 0


# --- docker-compose.yml ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def command(service: dict) -> list[str]:
    cmd = service["command"]
    return shlex.split(cmd) if isinstance(cmd, str) else list(cmd)


def workdir(stage) -> PurePosixPath:
    return PurePosixPath([args for kw, args in stage["steps"] if kw == "WORKDIR"][-1])


def test_services_build_existing_targets_with_gpus(compose, stages):
    for name, service in compose["services"].items():
        assert service["build"]["target"] in stages, name
        devices = service["deploy"]["resources"]["reservations"]["devices"]
        assert any("gpu" in d.get("capabilities", []) for d in devices), f"{name} gets no GPU"
        for dependency in service.get("depends_on", {}):
            assert dependency in compose["services"], f"{name} depends on unknown service {dependency}"


def mounts(service, stage) -> dict[PurePosixPath, Path]:
    """Container folder -> host folder, for the bind mounts under the image's work directory."""
    out = {}
    for volume in service["volumes"]:
        host, container = volume.split(":")[:2]
        out[PurePosixPath(container).relative_to(workdir(stage))] = ROOT / host
    return out


def etl_steps(compose) -> list:
    argv = command(compose["services"]["etl"])
    assert argv[:2] == ["sh", "-c"], argv
    steps = [shlex.split(step) for step in argv[2].split("&&")]
    assert all(step[:3] == ["python", "-m", "etl"] for step in steps), steps
    return [etl_parser().parse_args(step[3:]) for step in steps]


def in_mount(path, service, stage) -> bool:
    return PurePosixPath(path).parts[0] in {m.parts[0] for m in mounts(service, stage)}


def test_etl_writes_into_bind_mounts_and_train_reads_it(compose, stages):
    etl, train = compose["services"]["etl"], compose["services"]["train"]
    stage = stages[etl["build"]["target"]]
    synthetic, prepare = etl_steps(compose)
    assert prepare.input == synthetic.output
    cfg = PrepareConfig(input=prepare.input, output=prepare.output, workflow_dir=prepare.workflow_dir)
    for path in (synthetic.output, cfg.output, cfg.fitted_workflow_dir):
        assert in_mount(path, etl, stage), f"{path} is lost when the etl container exits"
    argv = command(train)
    assert argv[0] == "torchrun" and argv[argv.index("-m") + 1] == "training"
    args = train_parse_args(argv[argv.index("-m") + 2:])
    assert args.data == Path(prepare.output)
    for path in (args.checkpoint_dir, args.log_path):
        assert in_mount(path, train, stage), f"{path} is lost when the train container exits"


def test_jupyter_is_reachable_from_this_machine_only(compose):
    service = compose["services"]["jupyter"]
    argv = command(service)
    port = next(a.split("=")[1] for a in argv if a.startswith("--port="))
    published = [str(p).split(":") for p in service["ports"]]
    assert any(p[-1] == port for p in published), service["ports"]
    # The server runs without a token, so it must not be reachable from other machines.
    assert all(len(p) == 3 and p[0] == "127.0.0.1" for p in published), service["ports"]


PARSERS = {"serving.export": export_parser, "serving": serving_parser}


def test_serve_exports_what_train_wrote_and_serves_it_on_loopback(compose, stages):
    serve, train = compose["services"]["serve"], compose["services"]["train"]
    stage = stages[serve["build"]["target"]]
    argv = command(serve)
    assert argv[:2] == ["sh", "-c"], argv
    steps = [shlex.split(step) for step in argv[2].split("&&")]
    parsed = {step[2]: PARSERS[step[2]]().parse_args(step[3:]) for step in steps if step[:2] == ["python", "-m"]}
    export = parsed["serving.export"]
    trained = train_parse_args(command(train)[command(train).index("-m") + 2:])
    assert export.checkpoint == trained.checkpoint_dir / "model.pth" and export.data == trained.data
    assert export.format == "torchscript"  # the Merlin image's Triton has the libtorch backend
    triton = next(step for step in steps if step[0] == "tritonserver")
    repository = next(a.split("=", 1)[1] for a in triton if a.startswith("--model-repository="))
    assert Path(repository) == export.output and in_mount(export.output, serve, stage)
    ports = {a.split("=")[0]: a.split("=")[1] for a in triton if a.startswith(("--http-port=", "--grpc-port="))}
    published = [str(p).split(":") for p in serve["ports"]]
    assert {p[-1] for p in published} == set(ports.values())
    assert all(len(p) == 3 and p[0] == "127.0.0.1" for p in published), serve["ports"]

