"""A seeded generator of MovieLens-like ratings that a recommender can learn from.

Structure that makes accuracy numbers meaningful:
- items belong to genres and have Zipf-like popularity (a few blockbusters, a long tail);
- users rate a heavy-tailed number of items (at least 20, as in MovieLens);
- each user's taste is a sparse mixture over genres (Dirichlet), so the held-out latest
  item is predictable from the user's history, but not from popularity alone;
- ratings are higher for genres the user likes; timestamps increase along each user's history.
Users are generated in chunks, so memory stays bounded whatever --rows is.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from contract.atomic import atomic_file, refuse_existing
from contract.errors import UserError
from contract.lock import exclusive

MIN_RATINGS = 20
START = 978_300_000  # 2001-01-01, MovieLens-1M era
CHUNK_ROWS = 2_000_000


@dataclass
class Catalogue:
    genre_of: np.ndarray          # item -> genre
    members: list                 # genre -> item indices, most popular first
    member_cdf: list              # genre -> cumulative popularity within the genre
    genre_share: np.ndarray       # overall popularity of each genre
    raw_ids: np.ndarray           # item index -> raw movieId


def make_catalogue(rng, items: int, genres: int) -> Catalogue:
    popularity = 1.0 / (np.arange(items) + 10.0) ** 0.9
    popularity = rng.permutation(popularity)
    genre_of = rng.choice(genres, size=items, p=rng.dirichlet(np.full(genres, 2.0)))
    genre_of[rng.choice(items, genres, replace=False)] = np.arange(genres)  # no genre left empty
    members, member_cdf = [], []
    for g in range(genres):
        idx = np.flatnonzero(genre_of == g)
        idx = idx[np.argsort(-popularity[idx])]
        members.append(idx)
        member_cdf.append(np.cumsum(popularity[idx]) / popularity[idx].sum() if len(idx) else np.ones(0))
    share = np.bincount(genre_of, weights=popularity, minlength=genres)
    raw_ids = np.sort(rng.choice(np.arange(1, 3 * items + 1), size=items, replace=False))
    return Catalogue(genre_of, members, member_cdf, share / share.sum(), raw_ids)


def activity(rng, users: int, rows: int, items: int) -> np.ndarray:
    """Heavy-tailed ratings per user, at least MIN_RATINGS, summing to about `rows`."""
    extra_total = rows - MIN_RATINGS * users
    if extra_total < 0:
        raise UserError(f"--rows {rows} is too few for {users} users with {MIN_RATINGS} ratings each")
    weights = rng.lognormal(0.0, 1.2, users)
    cap = max(items // 2, MIN_RATINGS)
    extra = weights / weights.sum() * extra_total
    for _ in range(20):  # hand what the cap cut off to the users below it
        counts = np.minimum(MIN_RATINGS + extra, cap)
        short = rows - counts.sum()
        room = counts < cap
        if short < 1 or not room.any():
            break
        extra[room] += short * weights[room] / weights[room].sum()
    return np.floor(counts).astype(np.int64)


def draw_items(rng, cat: Catalogue, taste: np.ndarray, owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One (genre, item) per row: genre from the row owner's taste, item by popularity in it."""
    cdf = np.cumsum(taste, axis=1)
    genre = (rng.random(len(owner))[:, None] > cdf[owner]).sum(axis=1)
    genre = np.minimum(genre, taste.shape[1] - 1)
    item = np.empty(len(owner), dtype=np.int64)
    for g in np.unique(genre):
        rows = np.flatnonzero(genre == g)
        pick = np.searchsorted(cat.member_cdf[g], rng.random(len(rows)))
        item[rows] = cat.members[g][np.minimum(pick, len(cat.members[g]) - 1)]
    return genre, item


def user_chunk(rng, cat: Catalogue, first_user: int, counts: np.ndarray, genres: int) -> pd.DataFrame:
    n = len(counts)
    # Sparse personal taste, mixed with a little of the crowd's so catalogues suffice.
    taste = 0.9 * rng.dirichlet(np.full(genres, 0.1), size=n) + 0.1 * cat.genre_share
    owners, items = np.zeros(0, np.int64), np.zeros(0, np.int64)
    missing = counts.copy()
    for round_ in range(8):  # redraw what deduplication removed, exploring wider each time
        owner = np.repeat(np.arange(n), missing)
        explore = min(1.0, 0.15 * round_)
        _, item = draw_items(rng, cat, (1 - explore) * taste + explore * cat.genre_share, owner)
        owners, items = np.concatenate([owners, owner]), np.concatenate([items, item])
        _, keep = np.unique(owners * len(cat.genre_of) + items, return_index=True)
        owners, items = owners[keep], items[keep]
        missing = counts - np.bincount(owners, minlength=n)
        if not missing.any():
            break
    order = np.lexsort((rng.random(len(owners)), owners))
    owners, items = owners[order], items[order]
    affinity = taste[owners, cat.genre_of[items]] / taste[owners].max(axis=1)
    rating = np.clip(np.round(1.8 + 3.0 * affinity + rng.normal(0, 0.9, len(owners))), 1, 5)
    # Increasing timestamps per user: a start date, then exponential gaps (mean 1.5 days).
    gaps = rng.exponential(130_000, len(owners)).astype(np.int64) + 1
    starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
    run = np.cumsum(gaps)
    run -= np.repeat(run[starts] - gaps[starts], np.diff(np.r_[starts, len(owners)]))
    start_time = START + rng.integers(0, 3 * 365 * 86_400, n)
    return pd.DataFrame(
        {
            "userId": owners + first_user + 1,
            "movieId": cat.raw_ids[items],
            "rating": rating.astype(np.float32),
            "timestamp": start_time[owners] + run,
        }
    )


def generate(output, users: int = 6040, items: int = 3700, rows: int = 1_000_000, seed: int = 0,
             genres: int = 18, progress=None, overwrite: bool = False) -> int:
    """Write ratings.csv (ml-20m layout) or .parquet to `output`; returns the row count."""
    output = Path(output)
    if min(users, items, rows) < 1:
        raise UserError("--users, --items and --rows must be positive")
    if items < 2 * MIN_RATINGS:
        raise UserError(f"--items must be at least {2 * MIN_RATINGS}")
    rng = np.random.default_rng(seed)
    cat = make_catalogue(rng, items, genres)
    counts = activity(rng, users, rows, items)
    bounds = np.searchsorted(np.cumsum(counts), np.arange(CHUNK_ROWS, counts.sum(), CHUNK_ROWS))
    edges = np.unique(np.r_[0, bounds, users])
    written = 0
    with exclusive(output), atomic_file(output) as tmp:
        refuse_existing(output, overwrite)  # under the lock: no other run can create it meanwhile
        writer = None
        for lo, hi in zip(edges[:-1], edges[1:]):
            frame = user_chunk(rng, cat, lo, counts[lo:hi], genres)
            if output.suffix == ".parquet":
                import pyarrow as pa
                import pyarrow.parquet as pq

                table = pa.Table.from_pandas(frame, preserve_index=False)
                writer = writer or pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
            else:
                frame.to_csv(tmp, mode="a", header=written == 0, index=False, float_format="%.1f")
            written += len(frame)
            if progress:
                progress(len(frame))
        if writer:
            writer.close()
    return written
