"""NeuMF training on any dataset described by a DeepLearningExamples FeatureSpec (see README)."""
import contract  # noqa: F401  (applies the Merlin import-warning filters)
