"""DeepLearningExamples' FeatureSpec: the contract between the ETL and training.

A feature_spec.yaml has four sections (see feature_specs/ for annotated examples):
feature_spec (name -> dtype, cardinality), source_spec (mapping -> chunks of files),
channel_spec (role -> feature names) and metadata. Paths are relative to the yaml.

Two layouts share the format. **pairs** (NCF): one row per (user, item, label); channels
user_ch/item_ch/label_ch. **lists** (VAE-CF): one row per user with lists of items; the item_ch
feature is declared `multivalued: true` (a list per row, parquet only), channels user_ch/item_ch for
`train` (and `known`), plus fold_in_ch/target_ch for the held-out mappings `validation` and `test`.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from .atomic import atomic_file
from .chunks import read_chunk_file
from .errors import UserError

CHUNK_TYPES = ("parquet", "csv")
REQUIRED_CHANNELS = ("user_ch", "item_ch", "label_ch")
# The lists layout: a feature holding a list of ids per row says `multivalued: true`.
MULTIVALUED = "multivalued"
LIST_CHANNELS = ("user_ch", "item_ch")
HELDOUT_CHANNELS = ("fold_in_ch", "target_ch")  # held-out users: the items folded in, the items to predict
HELDOUT_MAPPINGS = ("validation", "test")


class _PlainDumper(yaml.SafeDumper):
    """Writes repeated lists out in full: no &id001 anchors in a file people read."""

    def ignore_aliases(self, data):
        return True


@dataclass
class FeatureSpec:
    feature_spec: dict
    source_spec: dict
    channel_spec: dict
    metadata: dict = field(default_factory=dict)
    base_directory: Path = Path(".")

    # ---- reading and writing -------------------------------------------------------
    @classmethod
    def from_yaml(cls, path, required=("train",)) -> "FeatureSpec":
        """Load and validate; `required` mappings must exist, others are checked when present."""
        path = Path(path)
        if path.is_dir():
            path = path / "feature_spec.yaml"
        if not path.is_file():
            raise UserError(f"feature spec {path} does not exist")
        try:
            raw = yaml.safe_load(path.read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise UserError(f"feature spec {path} is not valid YAML: {str(exc).splitlines()[0]}")
        if not isinstance(raw, dict):
            raise UserError(f"feature spec {path} is not a mapping of sections")
        for section in ("feature_spec", "source_spec", "channel_spec"):
            if not isinstance(raw.get(section), dict):
                raise UserError(f"feature spec {path}: section '{section}' is missing")
        spec = cls(
            feature_spec=raw["feature_spec"],
            source_spec=raw["source_spec"],
            channel_spec=raw["channel_spec"],
            metadata=raw.get("metadata") or {},
            base_directory=path.parent,
        )
        spec.validate(tuple(dict.fromkeys([*required, *spec.source_spec])))
        return spec

    def to_dict(self) -> dict:
        return copy.deepcopy(
            {
                "feature_spec": self.feature_spec,
                "source_spec": self.source_spec,
                "channel_spec": self.channel_spec,
                "metadata": self.metadata,
            }
        )

    def to_yaml(self, path) -> None:
        with atomic_file(Path(path)) as tmp:
            tmp.write_text(yaml.dump(self.to_dict(), Dumper=_PlainDumper, sort_keys=False))

    # ---- validation ----------------------------------------------------------------
    def validate(self, mappings=("train",)) -> None:
        """Check the structure and that every referenced file exists; name the bad field."""
        for name, props in self.feature_spec.items():
            if not isinstance(props, dict) or "dtype" not in props:
                raise UserError(f"feature_spec.{name}: needs a 'dtype'")
            if not isinstance(props.get(MULTIVALUED, False), bool):
                raise UserError(f"feature_spec.{name}.{MULTIVALUED} must be true or false")
        if self.is_lists:
            self._validate_lists(mappings)
            return
        for channel in REQUIRED_CHANNELS:
            features = self.channel_spec.get(channel)
            if not features:
                raise UserError(f"channel_spec.{channel} is missing or empty")
            for feature in features:
                if feature not in self.feature_spec:
                    raise UserError(f"channel_spec.{channel}: unknown feature '{feature}'")
        for channel in ("user_ch", "item_ch"):
            feature = self.channel_spec[channel][0]
            if not isinstance(self.feature_spec[feature].get("cardinality"), int):
                raise UserError(f"feature_spec.{feature}: needs an integer 'cardinality'")
        for mapping in mappings:
            self._validate_mapping(mapping)
        if "test" in mappings and not self.given_split and self.samples_per_series < 2:
            raise UserError("metadata.test_samples_per_series must be at least 2 (or metadata.protocol.split: given, "
                            "for test positives ranked against the whole catalogue)")

    def _validate_mapping(self, mapping: str) -> None:
        seen = self._validate_chunks(mapping)
        for channel in REQUIRED_CHANNELS:
            feature = self.channel_spec[channel][0]
            if feature not in seen:
                raise UserError(f"source_spec.{mapping} has no chunk with feature '{feature}' ({channel})")

    def _validate_chunks(self, mapping: str) -> set:
        """Chunk types, features and files of a mapping; returns the features it holds."""
        chunks = self.source_spec.get(mapping)
        if not chunks:
            raise UserError(f"source_spec.{mapping} is missing or empty")
        seen = set()
        for i, chunk in enumerate(chunks):
            where = f"source_spec.{mapping}[{i}]"
            if chunk.get("type") not in CHUNK_TYPES:
                raise UserError(f"{where}.type must be one of {CHUNK_TYPES}, got {chunk.get('type')!r}")
            for feature in chunk.get("features") or []:
                if feature not in self.feature_spec:
                    raise UserError(f"{where}.features: unknown feature '{feature}'")
                if self.is_multivalued(feature) and chunk["type"] != "parquet":
                    raise UserError(f"{where}: '{feature}' is multivalued (a list per row), which only a parquet "
                                    f"chunk can hold, not {chunk['type']}")
                seen.add(feature)
            if not chunk.get("files"):
                raise UserError(f"{where}.files is missing or empty")
            for f in chunk["files"]:
                if not (self.base_directory / f).is_file():
                    raise UserError(f"{where}.files: {self.base_directory / f} does not exist")
        return seen

    def _validate_lists(self, mappings) -> None:
        """The lists layout: user ids and item lists in train (and known), fold-in and target lists when held out."""
        heldout = [m for m in mappings if m in HELDOUT_MAPPINGS]
        for channel in LIST_CHANNELS + (HELDOUT_CHANNELS if heldout else ()):
            features = self.channel_spec.get(channel)
            if not features:
                why = f" (the lists layout's {', '.join(heldout)} mapping needs it)" if channel in HELDOUT_CHANNELS else ""
                raise UserError(f"channel_spec.{channel} is missing or empty{why}")
            if features[0] not in self.feature_spec:
                raise UserError(f"channel_spec.{channel}: unknown feature '{features[0]}'")
        for channel in LIST_CHANNELS:
            feature = self.channel_spec[channel][0]
            if not isinstance(self.feature_spec[feature].get("cardinality"), int):
                raise UserError(f"feature_spec.{feature}: needs an integer 'cardinality'")
        if self.is_multivalued(self.user_feature):
            raise UserError(f"feature_spec.{self.user_feature} (user_ch) must not be {MULTIVALUED}: one user per row")
        for channel in HELDOUT_CHANNELS if heldout else ():
            feature = self.channel_spec[channel][0]
            if not self.is_multivalued(feature):
                raise UserError(f"feature_spec.{feature} ({channel}) must be {MULTIVALUED}: true, like the item lists")
            if self.feature_spec[feature].get("cardinality") != self.item_cardinality:
                raise UserError(f"feature_spec.{feature}.cardinality must equal the item cardinality "
                                f"{self.item_cardinality} ({channel} holds item ids)")
        for mapping in mappings:
            seen = self._validate_chunks(mapping)
            channels = ("user_ch",) + HELDOUT_CHANNELS if mapping in HELDOUT_MAPPINGS else LIST_CHANNELS
            for channel in channels:
                feature = self.channel_spec[channel][0]
                if feature not in seen:
                    raise UserError(f"source_spec.{mapping} has no chunk with feature '{feature}' ({channel})")

    # ---- accessors -----------------------------------------------------------------
    def channel_feature(self, channel: str) -> str:
        return self.channel_spec[channel][0]

    def is_multivalued(self, feature: str) -> bool:
        return bool(self.feature_spec.get(feature, {}).get(MULTIVALUED, False))

    @property
    def is_lists(self) -> bool:
        """The lists layout (VAE-CF): the item channel's feature holds a list of items per row."""
        items = self.channel_spec.get("item_ch") or [None]
        return isinstance(self.feature_spec.get(items[0]), dict) and self.is_multivalued(items[0])

    @property
    def layout(self) -> str:
        return "lists" if self.is_lists else "pairs"

    @property
    def fold_in_feature(self) -> str:
        return self.channel_feature("fold_in_ch")

    @property
    def target_feature(self) -> str:
        return self.channel_feature("target_ch")

    @property
    def user_feature(self) -> str:
        return self.channel_feature("user_ch")

    @property
    def item_feature(self) -> str:
        return self.channel_feature("item_ch")

    @property
    def label_feature(self) -> str:
        return self.channel_feature("label_ch")

    @property
    def user_cardinality(self) -> int:
        return int(self.feature_spec[self.user_feature]["cardinality"])

    @property
    def item_cardinality(self) -> int:
        return int(self.feature_spec[self.item_feature]["cardinality"])

    @property
    def table_sizes(self) -> dict[str, int]:
        """Embedding table sizes by role, as checkpoints record them."""
        return {"users": self.user_cardinality, "items": self.item_cardinality}

    @property
    def samples_per_series(self) -> int:
        return int(self.metadata.get("test_samples_per_series", 0))

    @property
    def protocol(self) -> dict:
        """How test (and validation) were made: `split` "given" (the user's own files: positive pairs only, each
        user's items ranked against the whole catalogue) or absent (leave-one-out series with sampled negatives)."""
        return self.metadata.get("protocol") or {}

    @property
    def given_split(self) -> bool:
        """Test and validation mappings hold positive pairs only (several per user), no sampled negatives."""
        return self.protocol.get("split") == "given"

    # ---- what the ETL recorded about its encoding (absent from hand-made BYO specs) -------
    @property
    def encoding(self) -> dict:
        return self.metadata.get("encoding") or {}

    @property
    def first_index(self) -> int:
        """The lowest index of a real user or item; indices below it are reserved."""
        return int(self.encoding.get("first_index", 0))

    @property
    def workflow_id(self) -> str | None:
        """Identifies the fitted workflow that encoded this data (None for BYO data)."""
        return self.encoding.get("workflow_id")

    @property
    def workflow_dir(self) -> Path | None:
        """The saved workflow that encoded this data, as the ETL recorded it (None for BYO data)."""
        where = self.encoding.get("workflow")
        return (self.base_directory / where).resolve() if where else None

    def vocabulary_file(self, workflow_dir, feature: str) -> Path:
        """Where a saved workflow keeps the raw values of `feature` (from the ETL's metadata)."""
        files = self.encoding.get("vocabularies") or {}
        if feature not in files:
            raise UserError(f"{self.base_directory}: metadata.encoding names no vocabulary for '{feature}' "
                            "(was this data written by `etl prepare`/`etl transform`?)")
        return Path(workflow_dir) / files[feature]

    def chunks(self, mapping: str) -> list[dict]:
        """The mapping's chunks with absolute file paths."""
        return [
            {**chunk, "files": [str(self.base_directory / f) for f in chunk["files"]]}
            for chunk in self.source_spec[mapping]
        ]

    def single_chunk(self, mapping: str, features) -> dict | None:
        """The one chunk holding all `features`, if the mapping is laid out that way."""
        for chunk in self.chunks(mapping):
            if set(features) <= set(chunk["features"]):
                return chunk
        return None

    def read(self, mapping: str, features=None) -> pd.DataFrame:
        """Load `features` of a mapping into memory: rows over files, columns over chunks."""
        features = list(features or [self.user_feature, self.item_feature, self.label_feature])
        columns = {}
        for chunk in self.chunks(mapping):
            wanted = [f for f in chunk["features"] if f in features and f not in columns]
            if not wanted:
                continue
            parts = [read_chunk_file(chunk, f, wanted) for f in chunk["files"]]
            frame = pd.concat(parts, ignore_index=True)
            for name in wanted:
                columns[name] = frame[name].to_numpy()
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise UserError(f"source_spec.{mapping}: chunks have different row counts {sorted(lengths)}")
        missing = [f for f in features if f not in columns]
        if missing:
            raise UserError(f"source_spec.{mapping} has no chunk with feature(s) {missing}")
        return pd.DataFrame(columns)[features]

    def check_feature_ids(self, values, feature: str, mapping: str) -> None:
        """Every id of `feature` (e.g. the flattened values of an item list) must be < its cardinality."""
        card = int(self.feature_spec[feature]["cardinality"])
        if len(values) and (values.min() < 0 or values.max() >= card):
            raise UserError(f"source_spec.{mapping}: {feature} ids span [{values.min()}, {values.max()}] "
                            f"but feature_spec.{feature}.cardinality is {card}")

    def check_ids(self, frame: pd.DataFrame, mapping: str) -> None:
        """Every id must index its embedding table: 0 <= id < cardinality."""
        for feature, card in ((self.user_feature, self.user_cardinality), (self.item_feature, self.item_cardinality)):
            if feature not in frame or len(frame) == 0:
                continue
            values = frame[feature].to_numpy()
            if values.min() < 0 or values.max() >= card:
                raise UserError(
                    f"source_spec.{mapping}: {feature} ids span [{values.min()}, {values.max()}] "
                    f"but feature_spec.{feature}.cardinality is {card}"
                )
