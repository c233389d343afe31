"""Serving: a real Triton Inference Server (PyTriton) answering raw ids with training's model, for every
model family, and the Triton model repository export.

Sits on top of `training` and the contract; neither ever imports it, nor PyTriton, tritonclient or
Triton's python backend (pyproject.toml's import-linter contracts). `python -m serving --help` and
`python -m serving.export --help` for the commands.
"""
