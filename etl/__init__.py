"""Raw interactions -> NVTabular workflow -> parquet + FeatureSpec (see README)."""
import warnings

# Merlin warns on import about optional frameworks we do not use, and on every CPU Dataset.
warnings.filterwarnings("ignore", message="(Triton|Tensorflow) dtype mappings did not load")
warnings.filterwarnings("ignore", message="Initializing an NVTabular Dataset in CPU mode")
