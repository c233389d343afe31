"""Serving: a real Triton Inference Server (PyTriton) answering raw ids with training's model.

Sits on top of `training` and the contract; neither ever imports it (pyproject.toml's
import-linter contracts). `python -m serving --help` for the command.
"""
