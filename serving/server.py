"""Start Triton (PyTriton's bundled `tritonserver`), bind the two models, serve until SIGTERM/SIGINT.

The inference code runs in this process (PyTriton's proxy); Triton's python-backend stubs relay
requests to it. Stopping asks Triton to finish in-flight requests (`--exit-timeout`); what its
processes still hold after that is ended and removed (leftovers.py), also after a kill -9, at the
next start.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sysconfig
import threading
import time
from pathlib import Path

import numpy as np

from contract.console import say
from contract.errors import UserError
from training.recommend import Recommender

from .leftovers import Leftovers, server_scratch, sweep_killed_servers
from .models import RecommendModel, ScoreModel


def check_args(args) -> None:
    for flag in ("topk", "batch_users", "max_batch_users", "max_batch_pairs", "exit_timeout"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be at least 1, not {getattr(args, flag)}")
    if args.queue_delay_us < 0:
        raise UserError(f"--queue-delay-us must not be negative, not {args.queue_delay_us}")
    ports = {"--http-port": args.http_port, "--grpc-port": args.grpc_port, "--metrics-port": args.metrics_port}
    ports = {flag: port for flag, port in ports.items() if port is not None}
    if len(set(ports.values())) < len(ports):
        raise UserError(f"{', '.join(ports)} must be different ports")
    for flag, port in ports.items():
        if not 1 <= port <= 65535:
            raise UserError(f"{flag} {port} is not a TCP port")
        with socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed port in TIME_WAIT is free
            try:
                probe.bind((args.host, port))
            except OSError as exc:
                raise UserError(f"{flag} {port}: cannot listen on {args.host}:{port} ({exc.strerror})")


def use_interpreter_libpython() -> None:
    """The python-backend stub must load this interpreter's libpython, not the system one
    (PyTriton's documented fix; else the model fails to load with an RLock AttributeError)."""
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir:
        os.environ["LD_LIBRARY_PATH"] = ":".join(p for p in (libdir, os.environ.get("LD_LIBRARY_PATH")) if p)


def bind(triton, recommend: RecommendModel, score: ScoreModel, args) -> None:
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor

    def config(max_batch: int) -> ModelConfig:
        return ModelConfig(max_batch_size=max_batch, batcher=DynamicBatcher(max_queue_delay_microseconds=args.queue_delay_us))

    triton.bind("recommend", recommend, inputs=[Tensor(name="user_id", dtype=bytes, shape=(1,))],
                outputs=[Tensor(name="item_ids", dtype=bytes, shape=(args.topk,)),
                         Tensor(name="scores", dtype=np.float32, shape=(args.topk,)),
                         Tensor(name="source", dtype=bytes, shape=(1,))],
                config=config(args.max_batch_users), strict=True)
    triton.bind("score", score, inputs=[Tensor(name="user_id", dtype=bytes, shape=(1,)),
                                        Tensor(name="item_id", dtype=bytes, shape=(1,))],
                outputs=[Tensor(name="score", dtype=np.float32, shape=(1,))],
                config=config(args.max_batch_pairs), strict=True)


def serve(args) -> dict:
    """Run until SIGTERM/SIGINT; returns what was served."""
    check_args(args)
    from pytriton.constants import PYTRITON_HOME

    sweep_killed_servers(PYTRITON_HOME)
    rec = Recommender(args.checkpoint, args.data, args.workflow, args.batch_users, args.amp)
    recommend, score = RecommendModel(rec, args.topk), ScoreModel(rec)
    # the weights, and the users' histories through one answer, load now rather than on the first request
    rec.model  # noqa: B018
    recommend.answer([str(raw).encode() for raw in rec.user_vocab.iloc[:1]])
    say(f"loaded {args.checkpoint} ({rec.variant}) on {rec.device}: {len(rec.user_vocab):,} users, "
        f"{len(rec.item_vocab):,} items, histories from {len(rec.specs)} --data folder(s)")

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    use_interpreter_libpython()
    logging.getLogger("pytriton").setLevel(logging.ERROR)  # its INFO lines and tritonserver's logs stay quiet
    from pytriton.triton import Triton, TritonConfig

    scratch = server_scratch(PYTRITON_HOME)
    leftovers = Leftovers(scratch)
    try:
        log = args.triton_log or scratch / "tritonserver.log"
        config = TritonConfig(http_address=args.host, http_port=args.http_port,
                              allow_grpc=args.grpc_port is not None, grpc_address=args.host, grpc_port=args.grpc_port,
                              allow_metrics=args.metrics_port is not None, metrics_port=args.metrics_port,
                              exit_timeout_secs=args.exit_timeout, log_file=log)
        triton = Triton(config=config, workspace=scratch / "workspace")
        try:
            bind(triton, recommend, score, args)
            say("starting Triton ...")
            try:
                triton.run()
            except Exception as exc:  # noqa: BLE001 - PyTriton raises several types; Triton's log says why
                raise UserError(f"Triton did not start: {last_error(log) or exc}")
            endpoints = f"http://{args.host}:{args.http_port}" + (f", gRPC {args.host}:{args.grpc_port}"
                                                                  if args.grpc_port else "")
            say(f"serving models recommend (top {args.topk}) and score on {endpoints}; SIGTERM or Ctrl-C stops")
            watch(triton, stop, leftovers, log)
            say("stopping ...")
        finally:
            leftovers.survey()
            triton.stop()
            leftovers.remove()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"recommend": recommend.counts(), "score": score.counts()}


def watch(triton, stop: threading.Event, leftovers: Leftovers, log: Path, survey_every_s: float = 5.0) -> None:
    """Serve until `stop`; what Triton's processes hold is recorded now and then, for a start after a kill -9."""
    surveyed = 0.0
    while not stop.wait(0.5):
        if not triton.is_alive():
            raise UserError(f"Triton stopped unexpectedly: {last_error(log) or 'see its log'}")
        if time.monotonic() - surveyed > survey_every_s:
            leftovers.survey()
            surveyed = time.monotonic()


def last_error(log: Path) -> str:
    """The last error line of Triton's log (its lines start with a severity letter), else its last line."""
    try:
        lines = [line.strip() for line in Path(log).read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    errors = [line for line in lines if line.startswith("E")]
    return (errors or lines or [""])[-1]
