"""The workflow step of the exported Triton repository: a python-backend model, copied there as
`workflow/1/model.py` by `python -m serving.export` and run by Triton (never imported here).

Raw `user_id` / `item_id` (BYTES) -> `user_index` / `item_index` (INT64): the index the saved
workflow's Categorify gives each id, read from the workflow's own vocabularies (copied beside
this file and checked against the FeatureSpec's fingerprint at export), so no NVTabular graph
runs per request; an id the workflow has never seen becomes the out-of-vocabulary index, as in
`etl transform`. Needs the project installed in Triton's Python (the Merlin image has it).
"""
from __future__ import annotations

import json
from pathlib import Path

import triton_python_backend_utils as pb_utils

from contract.vocabulary import VocabularyIndex, read_vocabulary

HERE = Path(__file__).resolve().parent


class TritonPythonModel:
    def initialize(self, args):
        meta = json.loads((HERE / "encoding.json").read_text())
        self.oov = int(meta["out_of_vocabulary"])
        self.columns = {name: (entry["output"], VocabularyIndex(read_vocabulary(HERE / entry["file"], entry["feature"])))
                        for name, entry in meta["inputs"].items()}

    def execute(self, requests):
        responses = []
        for request in requests:
            outputs = []
            for name, (output, vocabulary) in self.columns.items():
                raw = pb_utils.get_input_tensor_by_name(request, name).as_numpy()
                index = vocabulary.encode(raw.ravel(), missing=self.oov, strict=False).reshape(raw.shape)
                outputs.append(pb_utils.Tensor(output, index))
            responses.append(pb_utils.InferenceResponse(output_tensors=outputs))
        return responses
