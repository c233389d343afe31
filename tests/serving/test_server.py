"""`python -m serving` end to end: the real Triton server on loopback, queried with tritonclient.http,
compared with `training.recommend` and `etl transform`, bad requests refused while it stays up, a
SIGTERM under load that leaves no process, shared-memory segment or folder behind, and a start that
removes what a server killed with -9 left. The NeuMF server starts once, then once more to be killed;
a Mult-VAE server once more, for its answers (folded-in, history-less and unknown users) and its stop."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import torch
import tritonclient.http as http
from tritonclient.utils import InferenceServerException

from contract.feature_spec import FeatureSpec
from etl.transform import transform
from serving.export import load_exportable
from training.recommend import main as recommend_main

from ..helpers import ROOT, run_module, truncated_vocabulary, vocabulary, write_ratings_csv
from .lists_data import everything, fold_in_logits, positives, users_by_history

K = 10
START_TIMEOUT_S = 90
STOP_TIMEOUT_S = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shared_memory_of(pids) -> set[str]:
    """/dev/shm segments the processes map or hold open."""
    names = set()
    for pid in pids:
        try:
            maps = Path(f"/proc/{pid}/maps").read_text()
            fds = [p.readlink() for p in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        names |= {line.split()[-1] for line in maps.splitlines() if "/dev/shm/" in line}
        names |= {str(target) for target in fds if str(target).startswith("/dev/shm/")}
    return {name.removesuffix(" (deleted)") for name in names}


class Server:
    def __init__(self, proc: subprocess.Popen, port: int, stderr: Path):
        self.proc, self.port, self.stderr = proc, port, stderr
        self.client = http.InferenceServerClient(f"127.0.0.1:{port}", concurrency=8, network_timeout=60)

    def log(self) -> str:
        return self.stderr.read_text()[-3000:]

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the server exited ({self.proc.returncode}):\n{self.log()}"
            try:
                if all(self.client.is_model_ready(m) for m in ("recommend", "score")):
                    return
            except (InferenceServerException, ConnectionError, OSError):
                pass
            time.sleep(0.25)
        raise AssertionError(f"the server was not ready after {START_TIMEOUT_S}s:\n{self.log()}")

    def stop(self) -> tuple[int, str]:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        return self.proc.returncode, out


def start(checkpoint: Path, data: Path, tmp: Path, env=None):
    """`python -m serving` on a free loopback port, ready (the caller stops it)."""
    stderr = tmp / "stderr.txt"
    port = free_port()
    with stderr.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "serving", "--checkpoint", str(checkpoint), "--data", str(data),
                                 "--topk", str(K), "--http-port", str(port), "--queue-delay-us", "20000"],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True, env={**os.environ, **(env or {})})
    served = Server(proc, port, stderr)
    try:
        served.wait_ready()
    except BaseException:
        if proc.poll() is None:
            served.stop()
        raise
    return served


def serving(checkpoint, data, folder):
    """A server for the whole module, stopped at its end."""
    served = start(checkpoint, data, folder)
    try:
        yield served
    finally:
        if served.proc.poll() is None:
            served.stop()


@pytest.fixture(scope="module")
def server(prepared, trained, tmp_path_factory):
    yield from serving(trained, prepared, tmp_path_factory.mktemp("serving"))


@pytest.fixture(scope="module")
def vae_server(prepared_lists, trained_vae, tmp_path_factory):
    yield from serving(trained_vae, prepared_lists, tmp_path_factory.mktemp("serving_vae"))


def bytes_input(name: str, values) -> http.InferInput:
    array = np.array([str(v) for v in values], dtype=object)[:, None]
    tensor = http.InferInput(name, list(array.shape), "BYTES")
    tensor.set_data_from_numpy(array)
    return tensor


def recommend(client, users) -> dict:
    result = client.infer("recommend", [bytes_input("user_id", users)])
    return {name: result.as_numpy(name) for name in ("item_ids", "scores", "source")}


def test_recommend_answers_what_training_recommend_answers(server, prepared, trained, tmp_path):
    workflow = prepared.parent / "workflow"
    users, items = vocabulary(workflow, "user_id"), vocabulary(workflow, "item_id")
    known = [str(u) for u in users.iloc[[0, 1, 2, 40, 399]]]
    out = tmp_path / "cli.parquet"
    assert recommend_main(["--checkpoint", str(trained), "--data", str(prepared), "--users", ",".join([*known, "424242"]),
                           "--topk", str(K), "--output", str(out)]) == 0
    cli = pd.read_parquet(out)
    got = recommend(server.client, [*known, "424242"])
    assert got["item_ids"].shape == (6, K) and got["scores"].dtype == np.float32
    assert got["source"].ravel().tolist() == [b"model"] * 5 + [b"popularity"]
    for row, user in enumerate([*known, "424242"]):
        expected = cli[cli["user"] == user]
        assert got["item_ids"][row].astype(str).tolist() == expected["item"].tolist(), f"user {user}: other items or order"
        column = "score" if row < 5 else "popularity"
        np.testing.assert_allclose(got["scores"][row], expected[column].to_numpy(np.float32), rtol=1e-5, atol=1e-6)
    # and, independently of training.recommend: nothing the user already has comes back
    spec = FeatureSpec.from_yaml(prepared)
    history = pd.concat([spec.read("train"), spec.read("test").query("label == 1")])
    had = set(zip(users.loc[history["user_id"]].astype(str), items.loc[history["item_id"]].astype(str)))
    served = {(user, item.decode()) for user, row in zip(known, got["item_ids"]) for item in row}
    assert not served & had, "items the user already has were recommended"


def test_score_maps_raw_ids_as_etl_transform_does(server, prepared, trained, tmp_path):
    workflow = prepared.parent / "workflow"
    users, items = vocabulary(workflow, "user_id"), vocabulary(workflow, "item_id")
    pairs = [(users.iloc[0], items.iloc[0]), (users.iloc[3], items.iloc[9]), (987654, items.iloc[2]),
             (users.iloc[5], 555555), (users.iloc[7], items.iloc[4])]
    raw = write_ratings_csv(tmp_path / "pairs.csv", [(u, i, 5.0, t) for t, (u, i) in enumerate(pairs)])
    transform(workflow, raw, tmp_path / "encoded", quiet=True)
    encoded = pd.read_parquet(tmp_path / "encoded" / "data")
    assert (encoded["user_id"] == 2).sum() == 1 and (encoded["item_id"] == 2).sum() == 1  # the unseen ids
    scorer, _ = load_exportable(trained)
    with torch.no_grad():
        expected = scorer(torch.from_numpy(encoded["user_id"].to_numpy()), torch.from_numpy(encoded["item_id"].to_numpy()))
    result = server.client.infer("score", [bytes_input("user_id", [u for u, _ in pairs]),
                                           bytes_input("item_id", [i for _, i in pairs])])
    np.testing.assert_allclose(result.as_numpy("score").ravel(), expected.numpy(), rtol=1e-5, atol=1e-6)
    # the scores `recommend` ranks by are the logits `score` gives the same pairs
    top = recommend(server.client, [users.iloc[3]])
    again = server.client.infer("score", [bytes_input("user_id", [users.iloc[3]] * K),
                                          bytes_input("item_id", top["item_ids"][0].astype(str))])
    np.testing.assert_allclose(again.as_numpy("score").ravel(), top["scores"][0], rtol=1e-5, atol=1e-6)


def test_concurrent_requests_get_their_own_answers(server, prepared):
    users = [str(u) for u in vocabulary(prepared.parent / "workflow", "user_id").iloc[:16]]
    alone = [recommend(server.client, [u]) for u in users]
    pending = [server.client.async_infer("recommend", [bytes_input("user_id", [u])]) for u in users]
    for one, request in zip(alone, pending):
        result = request.get_result()
        assert (result.as_numpy("item_ids") == one["item_ids"]).all()
        np.testing.assert_allclose(result.as_numpy("scores"), one["scores"], rtol=1e-5)


@pytest.mark.parametrize("case", ["empty batch", "wrong dtype", "unknown model", "missing input", "too many users"])
def test_bad_requests_get_a_clear_error_and_the_server_stays_up(server, prepared, case):
    client = server.client
    if case == "empty batch":
        request, model, words = [http.InferInput("user_id", [0, 1], "BYTES")], "recommend", "user_id"
        request[0].set_data_from_numpy(np.zeros((0, 1), dtype=object))
    elif case == "wrong dtype":
        request, model, words = [http.InferInput("user_id", [2, 1], "INT64")], "recommend", "expects 'BYTES'"
        request[0].set_data_from_numpy(np.array([[1], [2]], dtype=np.int64))
    elif case == "unknown model":
        request, model, words = [bytes_input("user_id", ["1"])], "recommend_v2", "unknown model"
    elif case == "missing input":
        request, model, words = [bytes_input("user_id", ["1"])], "score", "missing required input(s) ['item_id']"
    else:
        request, model, words = [bytes_input("user_id", ["1"] * 1025)], "recommend", "batch-size must be <= 1024"
    with pytest.raises(InferenceServerException) as refused:
        client.infer(model, request)
    assert words in str(refused.value) and "Traceback" not in str(refused.value)
    assert client.is_server_live() and recommend(client, ["1"])["item_ids"].shape == (1, K)


def held_by(server: Server) -> tuple[list[psutil.Process], set[str], set[str]]:
    """The server's processes, the /dev/shm segments they map and the /tmp/folderXXXXXX copies of the model
    repository Triton loads the models from (a python-backend stub runs FOLDER/1/model.py)."""
    root = psutil.Process(server.proc.pid)
    tree = [root, *root.children(recursive=True)]
    stubs = [p.cmdline() for p in tree if p.name() == "triton_python_backend_stub"]
    assert len(stubs) == 2, "not one stub per model: nothing to check"
    segments = shared_memory_of(p.pid for p in tree)
    assert segments, "the server maps no shared memory: nothing to check"
    return tree, segments, {str(Path(argv[1]).parents[1]) for argv in stubs}


def assert_nothing_left(tree, segments, folders) -> None:
    _, alive = psutil.wait_procs(tree, timeout=10)  # helpers (multiprocessing's resource tracker) exit just after
    assert not alive, f"left running: {alive}"
    assert not [s for s in segments if Path(s).exists()], "shared memory left in /dev/shm"
    assert not [f for f in folders if Path(f).exists()], "Triton's model folders left"


class Load:
    """Clients sending `recommend` requests back to back until the server stops; when each was in flight."""

    def __init__(self, server: Server, users, clients=6):
        self.server, self.users, self.spans, self.done = server, users, [], threading.Event()
        self.threads = [threading.Thread(target=self._send, daemon=True) for _ in range(clients)]
        for thread in self.threads:
            thread.start()

    def _send(self) -> None:
        client = http.InferenceServerClient(f"127.0.0.1:{self.server.port}", network_timeout=60)
        while not self.done.is_set():
            begin = time.monotonic()
            try:
                recommend(client, self.users)
            except (InferenceServerException, ConnectionError, OSError):
                time.sleep(0.01)  # the server is stopping
            self.spans.append((begin, time.monotonic()))

    def stop(self) -> None:
        self.done.set()
        for thread in self.threads:
            thread.join(timeout=60)


def test_sigterm_under_load_stops_cleanly_leaving_nothing_behind(server, prepared):
    """Runs last in this module: the fixture's server is stopped here, while requests are in flight."""
    tree, segments, folders = held_by(server)
    load = Load(server, [str(u) for u in vocabulary(prepared.parent / "workflow", "user_id").iloc[:50]])
    while len(load.spans) < 20:
        time.sleep(0.05)
    sent = time.monotonic()
    code, out = server.stop()
    load.stop()
    assert any(begin < sent < end for begin, end in load.spans), "no request was in flight at the SIGTERM"
    assert code == 0, server.log()
    assert_nothing_left(tree, segments, folders)
    counts = json.loads(out.strip().splitlines()[-1])
    assert counts["recommend"]["executions"] < counts["recommend"]["requests"], "Triton never batched requests"
    assert "stopped" in server.log() and "Traceback" not in server.log()


def test_a_start_removes_what_a_killed_server_left(prepared, trained, tmp_path):
    """kill -9 leaves PyTriton's workspace (and, under load, Triton's model folders): the next start (even one
    that then fails) removes them, and whatever else the killed server held."""
    home = Path(tempfile.mkdtemp(prefix="pytriton-"))  # short: Triton's sockets live there (108 bytes at most)
    served = None
    try:
        served = start(trained, prepared, tmp_path, env={"PYTRITON_HOME": str(home)})
        served.client.close()
        tree, segments, folders = held_by(served)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not list(home.glob("*/leftovers.json")) and time.monotonic() < deadline:
            time.sleep(0.1)  # until the server has recorded what Triton holds
        load = Load(served, ["1"])  # killed while serving: Triton then exits without unloading its models
        served.proc.kill()
        served.proc.wait()
        psutil.wait_procs(tree, timeout=15)
        load.stop()
        assert list(home.iterdir()), "a kill -9 left nothing to remove"
        again = run_module("serving", "--checkpoint", tmp_path / "missing.pth", "--data", prepared, timeout=120,
                           env={"PYTRITON_HOME": str(home)})
        assert again.returncode == 2 and "missing.pth does not exist" in again.stderr
        assert_nothing_left(tree, segments, folders)
        assert not list(home.iterdir()), f"left in PYTRITON_HOME: {list(home.iterdir())}"
    finally:
        if served is not None and served.proc.poll() is None:
            served.proc.kill()
        shutil.rmtree(home, ignore_errors=True)


def cli_top(tmp_path, checkpoint, data, users) -> pd.DataFrame:
    out = tmp_path / "cli.parquet"
    assert recommend_main(["--checkpoint", str(checkpoint), "--data", str(data), "--users", ",".join(users),
                           "--topk", str(K), "--output", str(out)]) == 0
    return pd.read_parquet(out)


def test_vae_recommend_answers_what_training_recommend_answers(vae_server, prepared_lists, trained_vae, tmp_path):
    """Mult-VAE folds in train and held-out users' positives; a user the workflow knows without any positive in
    --data, and an unknown id, get the most popular items (source=popularity), as training.recommend gives them."""
    train, test, without = users_by_history(prepared_lists)
    users = [train[0], train[11], test[0], test[5], without[0], "424242"]
    cli = cli_top(tmp_path, trained_vae, prepared_lists, users)
    got = recommend(vae_server.client, users)
    assert got["item_ids"].shape == (6, K) and got["scores"].dtype == np.float32
    assert got["source"].ravel().tolist() == [b"model"] * 4 + [b"popularity"] * 2
    for row, user in enumerate(users):
        expected = cli[cli["user"] == user]
        assert got["item_ids"][row].astype(str).tolist() == expected["item"].tolist(), f"user {user}: other items or order"
        column = "score" if row < 4 else "popularity"
        np.testing.assert_allclose(got["scores"][row], expected[column].to_numpy(np.float32), rtol=1e-5, atol=1e-6)
    # and, independently of training.recommend: the scores are the model's logits for the user's folded-in positives
    have, seen = positives(prepared_lists), everything(prepared_lists)
    rec_users = vocabulary(prepared_lists / "workflow", "user_id")
    codes = [int(rec_users.index[rec_users.astype(str) == u][0]) for u in users[:4]]
    items = vocabulary(prepared_lists / "workflow", "item_id")
    by_raw = pd.Series(items.index, index=items.astype(str))
    n_items = FeatureSpec.from_yaml(prepared_lists).item_cardinality
    logits = fold_in_logits(load_exportable(trained_vae)[0].model, [have[c] for c in codes], n_items)
    for row, code in enumerate(codes):
        shown = by_raw.loc[got["item_ids"][row].astype(str)].to_numpy()
        assert not set(shown) & seen[code], "items the user already has (positive or known) were recommended"
        np.testing.assert_allclose(got["scores"][row], logits[row, shown], rtol=1e-5, atol=1e-6)


def test_vae_score_is_the_logit_recommend_ranks_by(vae_server, prepared_lists):
    train, _, without = users_by_history(prepared_lists)
    top = recommend(vae_server.client, [train[4]])
    assert top["source"][0, 0] == b"model"
    result = vae_server.client.infer("score", [bytes_input("user_id", [train[4]] * K),
                                               bytes_input("item_id", top["item_ids"][0].astype(str))])
    assert result.as_numpy("score").dtype == np.float32
    np.testing.assert_allclose(result.as_numpy("score").ravel(), top["scores"][0], rtol=1e-5, atol=1e-6)
    # a user without history and an unknown one both fold in nothing: the same logits
    items = vocabulary(prepared_lists / "workflow", "item_id").iloc[:3].astype(str).tolist()
    result = vae_server.client.infer("score", [bytes_input("user_id", [without[0]] * 3 + ["424242"] * 3),
                                               bytes_input("item_id", items * 2)])
    scores = result.as_numpy("score").ravel()
    assert np.isfinite(scores).all()
    np.testing.assert_array_equal(scores[:3], scores[3:])


def test_vae_server_stops_cleanly(vae_server):
    code, out = vae_server.stop()
    assert code == 0, vae_server.log()
    counts = json.loads(out.strip().splitlines()[-1])
    assert set(counts) == {"recommend", "score"}
    assert "(multvae)" in vae_server.log() and "stopped" in vae_server.log() and "Traceback" not in vae_server.log()


@pytest.mark.parametrize("case", ["port in use", "bad checkpoint", "pairs checkpoint, lists data",
                                  "lists checkpoint, pairs data", "truncated vocabulary"])
def test_startup_errors_are_one_line(tmp_path, request, case):
    prepared, trained = request.getfixturevalue("prepared"), request.getfixturevalue("trained")
    checkpoint, data, words, extra = trained, prepared, None, []
    if case == "truncated vocabulary":
        words = "unique.item_id.parquet is damaged or not parquet"
        extra = ["--workflow", truncated_vocabulary(prepared.parent / "workflow", tmp_path / "wf")]
    elif case == "bad checkpoint":
        checkpoint, words = tmp_path / "missing.pth", "missing.pth does not exist"
    elif case == "pairs checkpoint, lists data":
        data, words = request.getfixturevalue("prepared_lists"), "(neumf) needs the pairs layout"
    elif case == "lists checkpoint, pairs data":
        checkpoint, words = request.getfixturevalue("trained_vae"), "(multvae) needs the lists layout"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1] if case == "port in use" else free_port()
        result = run_module("serving", "--checkpoint", checkpoint, "--data", data, "--http-port", port, *extra,
                            timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (words or f"--http-port {port}") in result.stderr.strip().splitlines()[-1]
