"""`python -m serving.export`, NeuMF and Mult-VAE: the exported model scores like the PyTorch one (ONNX run
by onnxruntime; Mult-VAE's dense rows like its sparse path, and its top items like training.recommend's),
the repository's configs are valid Triton model configs that fit together, its workflow step loads in a
real Triton and maps raw ids like the saved workflow, and data of the other layout is refused in one line."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
import tritonclient.http as http
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from contract.feature_spec import FeatureSpec
from serving.export import load_exportable
from serving.export import main as export_main
from training.recommend import Recommender

from ..helpers import run_module, vocabulary, write_byo_dataset
from .lists_data import everything, fold_in_logits, positives, users_by_history


@pytest.fixture(scope="module")
def repositories(prepared, trained, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("export")
    for fmt in ("onnx", "torchscript"):
        assert export_main(["--checkpoint", str(trained), "--data", str(prepared), "--format", fmt,
                            "--output", str(root / fmt), "--max-batch", "512"]) == 0
    return {fmt: root / fmt for fmt in ("onnx", "torchscript")}


def pairs(trained, n=3000, seed=7):
    _, meta = load_exportable(trained)
    rng = np.random.default_rng(seed)
    sizes = meta["cardinalities"]
    return rng.integers(0, sizes["users"], n), rng.integers(0, sizes["items"], n)


def test_onnx_scores_like_the_pytorch_model(repositories, trained):
    users, items = pairs(trained)
    session = onnxruntime.InferenceSession(str(repositories["onnx"] / "neumf" / "1" / "model.onnx"),
                                           providers=["CPUExecutionProvider"])
    got = session.run(["score"], {"user_index": users, "item_index": items})[0]
    scorer, _ = load_exportable(trained)
    with torch.no_grad():
        want = scorer(torch.from_numpy(users), torch.from_numpy(items)).numpy()
    assert got.shape == (len(users),) and got.dtype == np.float32
    assert np.abs(got - want).max() <= 1e-5


def test_torchscript_scores_like_the_pytorch_model(repositories, trained):
    users, items = pairs(trained, n=17)
    module = torch.jit.load(str(repositories["torchscript"] / "neumf" / "1" / "model.pt"))
    scorer, _ = load_exportable(trained)
    with torch.no_grad():
        got, want = (m(torch.from_numpy(users), torch.from_numpy(items)).numpy() for m in (module, scorer))
    assert np.abs(got - want).max() <= 1e-5


def configs(repository: Path) -> dict:
    out = {}
    for path in sorted(repository.glob("*/config.pbtxt")):
        out[path.parent.name] = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
    return out


@pytest.mark.parametrize("fmt, platform", [("onnx", "onnxruntime_onnx"), ("torchscript", "pytorch_libtorch")])
def test_the_repository_is_valid_triton_configs_that_fit_together(repositories, fmt, platform):
    repository = repositories[fmt]
    models = configs(repository)
    assert set(models) == {"neumf", "workflow", "score"}
    assert models["neumf"].platform == platform and models["workflow"].backend == "python"
    assert (repository / "workflow" / "1" / "model.py").is_file() and (repository / "score" / "1").is_dir()
    assert all(m.name == name and m.max_batch_size == 512 for name, m in models.items())
    ensemble = models["score"]
    assert [i.name for i in ensemble.input] == ["user_id", "item_id"] and [o.name for o in ensemble.output] == ["score"]
    produced = {i.name for i in ensemble.input}
    for step in ensemble.ensemble_scheduling.step:  # each step reads what exists and writes its model's outputs
        model = models[step.model_name]
        assert set(step.input_map) == {i.name for i in model.input}
        assert set(step.input_map.values()) <= produced
        assert set(step.output_map) == {o.name for o in model.output}
        produced |= set(step.output_map.values())
    assert "score" in produced


def bundled_triton(tmp: Path) -> tuple[Path, Path, dict]:
    """PyTriton's tritonserver with its python backend, laid out as PyTriton lays it out."""
    from pytriton.triton import TRITONSERVER_DIST_DIR
    from pytriton.utils.distribution import get_libs_path, get_stub_path

    backend = tmp / "backends" / "python"
    backend.mkdir(parents=True)
    for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
        (backend / name).symlink_to(TRITONSERVER_DIST_DIR / "backends" / "python" / name)
    shutil.copy(get_stub_path(f"{sys.version_info[0]}.{sys.version_info[1]}"), backend / "triton_python_backend_stub")
    env = {**os.environ, "LD_LIBRARY_PATH": f"{sysconfig.get_config_var('LIBDIR')}:{get_libs_path()}",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return TRITONSERVER_DIST_DIR / "bin" / "tritonserver", tmp / "backends", env


def test_the_workflow_step_maps_raw_ids_in_a_real_triton(repositories, prepared, tmp_path):
    """The libtorch/onnxruntime backends are not in PyTriton's Triton; the python backend is."""
    binary, backends, env = bundled_triton(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(binary), f"--model-repository={repositories['onnx']}", f"--backend-directory={backends}",
                             "--model-control-mode=explicit", "--load-model=workflow", "--http-address=127.0.0.1",
                             f"--http-port={port}", "--allow-grpc=false", "--allow-metrics=false", "--exit-timeout-secs=5",
                             f"--log-file={tmp_path / 'triton.log'}"], env=env)
    client = http.InferenceServerClient(f"127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        while not _ready(client, "workflow"):
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "triton.log").read_text()[-2000:]
            time.sleep(0.2)
        workflow = prepared.parent / "workflow"
        users, items = vocabulary(workflow, "user_id"), vocabulary(workflow, "item_id")
        raw_users, raw_items = [users.iloc[0], 424242, users.iloc[9]], [items.iloc[5], items.iloc[0], "not-an-item"]
        inputs = []
        for name, values in (("user_id", raw_users), ("item_id", raw_items)):
            inputs.append(http.InferInput(name, [3, 1], "BYTES"))
            inputs[-1].set_data_from_numpy(np.array([str(v) for v in values], dtype=object)[:, None])
        result = client.infer("workflow", inputs)
        assert result.as_numpy("user_index").ravel().tolist() == [users.index[0], 2, users.index[9]]
        assert result.as_numpy("item_index").ravel().tolist() == [items.index[5], items.index[0], 2]
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=30)


def _ready(client, model) -> bool:
    try:
        return client.is_model_ready(model)
    except Exception:  # noqa: BLE001 - not listening yet
        return False


def test_export_refuses_data_of_another_model_in_one_line(tmp_path, trained, capsys):
    other = write_byo_dataset(tmp_path / "byo")
    assert export_main(["--checkpoint", str(trained), "--data", str(other), "--output", str(tmp_path / "repo")]) == 2
    assert "another dataset" in capsys.readouterr().err and not (tmp_path / "repo").exists()
    assert export_main(["--checkpoint", str(trained), "--output", str(tmp_path / "alone")]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["models"] == ["neumf"] and summary["max_abs_difference"] <= 1e-5
    assert export_main(["--checkpoint", str(trained), "--output", str(tmp_path / "alone")]) == 2
    assert "--overwrite" in capsys.readouterr().err


# ---- Mult-VAE ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vae_repositories(prepared_lists, trained_vae, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("export_vae")
    for fmt in ("onnx", "torchscript"):
        assert export_main(["--checkpoint", str(trained_vae), "--data", str(prepared_lists), "--format", fmt,
                            "--output", str(root / fmt)]) == 0
    return {fmt: root / fmt for fmt in ("onnx", "torchscript")}


def run_vae(repositories, fmt, dense: np.ndarray) -> np.ndarray:
    if fmt == "onnx":
        session = onnxruntime.InferenceSession(str(repositories["onnx"] / "multvae" / "1" / "model.onnx"),
                                               providers=["CPUExecutionProvider"])
        return session.run(["logits"], {"fold_in": dense})[0]
    with torch.no_grad():
        return torch.jit.load(str(repositories["torchscript"] / "multvae" / "1" / "model.pt"))(torch.from_numpy(dense)).numpy()


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_vae_export_folds_in_like_the_pytorch_model_and_ranks_like_training_recommend(vae_repositories, prepared_lists,
                                                                                      trained_vae, fmt):
    """Real users' positives as dense multi-hot rows (and an empty row): the logits of the model's own CSR path;
    the best unseen items of those logits are training.recommend's, in its order."""
    train, test, _ = users_by_history(prepared_lists)
    rec = Recommender(trained_vae, [prepared_lists])
    raw = [train[0], train[3], train[30], test[0], test[9]]
    codes = rec.encode_users(raw)
    have = positives(prepared_lists)
    n_items = FeatureSpec.from_yaml(prepared_lists).item_cardinality
    histories = [have[c] for c in codes] + [set()]
    dense = np.zeros((len(histories), n_items), dtype=np.float32)
    for row, items in enumerate(histories):
        dense[row, sorted(items)] = 1.0
    got = run_vae(vae_repositories, fmt, dense)
    assert got.shape == (len(histories), n_items) and got.dtype == np.float32
    assert np.abs(got - fold_in_logits(rec.model, histories, n_items)).max() <= 1e-5
    scores, items = rec.top(codes, 10)
    seen = everything(prepared_lists)
    for row in range(len(codes)):  # the client's side: the reserved indices and all the user has excluded
        masked = got[row].copy()
        masked[:3] = -np.inf
        masked[sorted(seen[codes[row]])] = -np.inf
        best = np.argsort(-masked, kind="stable")[:10]
        assert best.tolist() == items[row].tolist()
        np.testing.assert_allclose(masked[best], scores[row], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fmt, platform", [("onnx", "onnxruntime_onnx"), ("torchscript", "pytorch_libtorch")])
def test_vae_repository_is_the_model_and_the_workflow_step_without_a_score_ensemble(vae_repositories, prepared_lists,
                                                                                   fmt, platform):
    models = configs(vae_repositories[fmt])
    assert set(models) == {"multvae", "workflow"} and not (vae_repositories[fmt] / "score").exists()
    model, n_items = models["multvae"], FeatureSpec.from_yaml(prepared_lists).item_cardinality
    suffix = "__0" if fmt == "torchscript" else ""
    assert model.platform == platform and model.max_batch_size == 256 and models["workflow"].max_batch_size == 65536
    assert [(t.name, t.data_type, list(t.dims)) for t in model.input] == [(f"fold_in{suffix}", model_config_pb2.TYPE_FP32,
                                                                           [n_items])]
    assert [(t.name, t.data_type, list(t.dims)) for t in model.output] == [(f"logits{suffix}", model_config_pb2.TYPE_FP32,
                                                                            [n_items])]
    assert (vae_repositories[fmt] / "workflow" / "1" / "model.py").is_file()
    encoding = json.loads((vae_repositories[fmt] / "workflow" / "1" / "encoding.json").read_text())
    assert encoding["workflow_id"] == FeatureSpec.from_yaml(prepared_lists).workflow_id


def test_vae_export_says_why_there_is_no_score_ensemble(tmp_path, trained_vae, capsys):
    assert export_main(["--checkpoint", str(trained_vae), "--output", str(tmp_path / "alone"), "--format", "onnx"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["model"] == "multvae" and summary["models"] == ["multvae"] and summary["inputs"] == ["fold_in"]
    assert "history" in summary["note"] and "score" not in captured.err
    assert summary["note"].startswith("Mult-VAE scores a user from their history"), summary["note"]


@pytest.mark.parametrize("case", ["pairs checkpoint, lists data", "lists checkpoint, pairs data"])
def test_export_refuses_data_of_the_other_layout_in_one_line(tmp_path, request, capsys, case):
    if case.startswith("pairs"):
        checkpoint, data, words = "trained", "prepared_lists", "(neumf) needs the pairs layout"
    else:
        checkpoint, data, words = "trained_vae", "prepared", "(multvae) needs the lists layout"
    assert export_main(["--checkpoint", str(request.getfixturevalue(checkpoint)), "--data",
                        str(request.getfixturevalue(data)), "--output", str(tmp_path / "repo")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0] and not (tmp_path / "repo").exists()


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_full_disk_is_one_line_and_leaves_no_repository(tmp_path, trained, fmt):
    """Once a torch writer traceback (TorchScript) or an abort (ONNX). A file size limit fails writes as a full
    disk does."""
    out = tmp_path / "repo"
    result = run_module("serving.export", "--checkpoint", trained, "--format", fmt, "--output", out, timeout=300,
                        file_size_limit=10_000)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == f"error: cannot write {out}: File too large"
    assert not list(tmp_path.iterdir())
