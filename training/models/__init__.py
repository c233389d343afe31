"""The models, one module per family. Each family's task (`training/tasks/`) builds its model from the
architecture dict that checkpoints record and the embedding table sizes; `training.tasks.build_model`
builds any family's from the registry."""
