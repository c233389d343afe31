"""Raw interactions -> NVTabular workflow -> parquet + FeatureSpec (see README)."""
import contract  # noqa: F401  (applies the Merlin import-warning filters)
