"""The NVTabular workflow graphs, one module per data layout: edit these to change the encoding or add a feature.

`pairs` is NCF's graph (user and item ids, the positive rule as a label); `lists` builds on it and
groups each user's items into lists (VAE-CF). `etl prepare` fits a graph, saves the fitted workflow
next to its data (DATA_DIR/workflow) and applies it again; a new output column must also be named in
what `etl` writes (etl/pipeline.py's ENCODED_COLUMNS and the FeatureSpec it writes). This package
imports NVTabular and Merlin, never etl, training or serving (pyproject.toml's import contracts).

`Workflow.save` pickles the ops by reference: keep op classes and functions named, in these modules,
and under their names, or workflows saved earlier no longer load (etl keeps aliases for older homes).
"""
