"""`etl download`: fetch an official MovieLens zip and verify its checksum."""
from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path

from contract.atomic import atomic_file
from contract.errors import UserError

BASE_URL = "https://files.grouplens.org/datasets/movielens"
# MD5 sums as published by GroupLens next to each zip (<name>.zip.md5).
CHECKSUMS = {
    "ml-100k": "0e33842e24a9c977be4e0107933c0723",
    "ml-1m": "c4d9eecfca2ab87c1945afe126590906",
    "ml-20m": "cd245b17a1ae2cc31bb14903e1204af3",
    "ml-25m": "6b51fb2759a8657d3bfcbfc42b592ada",
}


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


def download(name: str, dest, timeout: float = 30.0) -> Path:
    if name not in CHECKSUMS:
        raise UserError(f"unknown dataset {name!r}; choose from {', '.join(CHECKSUMS)}")
    target = Path(dest) / f"{name}.zip"
    if target.exists() and md5sum(target) == CHECKSUMS[name]:
        return target
    url = f"{BASE_URL}/{name}.zip"
    try:
        with atomic_file(target) as tmp:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                while block := response.read(1 << 20):
                    out.write(block)
            if md5sum(tmp) != CHECKSUMS[name]:
                raise UserError(f"{url} downloaded but its MD5 does not match {CHECKSUMS[name]}; try again")
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(
            f"cannot download {url} ({reason}); without network, fetch {name}.zip elsewhere, "
            f"put it at {target} and run: python -m etl prepare --input {target} --output data/{name}"
        )
    return target
