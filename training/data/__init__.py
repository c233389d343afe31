"""Data layouts read from a FeatureSpec: pairs (NeuMF) now; per-user lists (VAE-CF) next."""
