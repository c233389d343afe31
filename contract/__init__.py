"""The contract between `etl` and `training`: the FeatureSpec, chunk reading, id checks,
the user-error type and atomic writes. It imports neither side; both sides import it."""
import warnings

# Both sides import Merlin, which warns on import about optional frameworks we do not use
# and on every CPU Dataset. Filtering here, once, keeps every entry point's output readable.
warnings.filterwarnings("ignore", message="(Triton|Tensorflow) dtype mappings did not load")
warnings.filterwarnings("ignore", message="Initializing an NVTabular Dataset in CPU mode")
