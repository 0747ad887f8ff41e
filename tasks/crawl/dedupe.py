"""Near-duplicate articles: the same story under two addresses with different canonicals.

A syndicated copy rarely matches byte for byte (another tagline, a dropped paragraph), so
bodies are compared by MinHash (Broder 1997) over word 5-shingles of the folded text:

- `PERMUTATIONS` = 120 hash functions give a signature whose share of equal positions
  estimates the Jaccard similarity of the two shingle sets (standard error about 0.04
  near 0.8).
- Two bodies are the same article when the estimate is at least `THRESHOLD` = 0.8 and
  their titles, where both have one, share at least `TITLE_OVERLAP` = 0.6 of the words of
  the shorter one. The title check keeps apart different stories whose extracted bodies
  are the same boilerplate (a paywall or cookie notice).
- Bodies under `MIN_SHINGLES` = 30 shingles (about 35 words) are never matched: short
  texts share too much by chance.
- Candidates are found by LSH banding: 20 bands of 6 rows. A pair with similarity s
  shares a band with probability 1 - (1 - s^6)^20: 0.998 at s = 0.8, 0.05 at s = 0.3, so
  only likely matches are compared.

Everything is deterministic across processes and versions: shingles are hashed with CRC-32
and the permutations' coefficients derive from fixed BLAKE2 digests, because signatures
are stored and compared across runs.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from schemas.ids import text_key

SHINGLE_WORDS = 5
PERMUTATIONS = 120
BANDS = 20
ROWS = PERMUTATIONS // BANDS
THRESHOLD = 0.8
TITLE_OVERLAP = 0.6
MIN_SHINGLES = 30
# characters of a body the signature reads: its cost is shingles x permutations x 8 bytes
# (a 9 MB body took 1.4 GB), and the first 100,000 characters tell two copies apart
SIGNATURE_CHARS = 100_000

_PRIME = np.uint64((1 << 61) - 1)
_MASK = np.uint64((1 << 32) - 1)


def _coefficients(tag: str) -> npt.NDArray[np.uint64]:
    values = [int.from_bytes(hashlib.blake2b(f"{tag}{i}".encode(), digest_size=8).digest(),
                             "little") % ((1 << 61) - 2) + 1 for i in range(PERMUTATIONS)]
    return np.array(values, dtype=np.uint64)


_A = _coefficients("minhash-a")
_B = _coefficients("minhash-b")


def shingles(text: str, size: int = SHINGLE_WORDS) -> set[str]:
    words = text_key(text).split()
    return {" ".join(words[i:i + size]) for i in range(max(0, len(words) - size + 1))}


def signature(text: str) -> bytes | None:
    """The MinHash signature of a body (PERMUTATIONS x uint32), None when it is too short."""
    found = shingles(text[:SIGNATURE_CHARS])
    if len(found) < MIN_SHINGLES:
        return None
    hashed = np.fromiter((zlib.crc32(s.encode("utf-8")) for s in found), dtype=np.uint64,
                         count=len(found))
    # (a*h + b) mod p, in uint64 arithmetic that wraps the way datasketch's does
    with np.errstate(over="ignore"):
        permuted = (np.outer(hashed, _A) + _B) % _PRIME & _MASK
    return bytes(permuted.min(axis=0).astype("<u4").tobytes())


def similarity(first: bytes, second: bytes) -> float:
    """Estimated Jaccard similarity of the shingle sets behind two signatures."""
    a = np.frombuffer(first, dtype="<u4")
    b = np.frombuffer(second, dtype="<u4")
    return float(np.mean(a == b)) if len(a) == len(b) and len(a) else 0.0


def bands(sig: bytes) -> list[tuple[int, int]]:
    """(band, bucket) pairs: two signatures sharing any pair are candidates."""
    width = ROWS * 4
    return [(band, int.from_bytes(hashlib.blake2b(sig[band * width:(band + 1) * width],
                                                  digest_size=8).digest(), "little",
                                  signed=True))
            for band in range(BANDS)]


def title_key(title: str | None) -> str | None:
    """The title's words, without a trailing " | Site name" or " - Site name"."""
    if not title:
        return None
    head = re.split(r"\s+[|–—-]\s+", title.strip())
    key = text_key(max(head, key=len) if len(head) > 1 else title)
    return key or None


def titles_agree(first: str | None, second: str | None) -> bool:
    """Missing titles never block a match; present ones must share most words."""
    if not first or not second:
        return True
    a, b = set(first.split()), set(second.split())
    return len(a & b) >= TITLE_OVERLAP * min(len(a), len(b))


@dataclass(frozen=True)
class Fingerprint:
    article_id: str
    minhash: bytes
    title_key: str | None


@dataclass
class NearDuplicateIndex:
    """Fingerprints in LSH buckets; `match` finds the article a body copies."""

    _buckets: dict[tuple[int, int], list[Fingerprint]] = field(default_factory=dict)

    def add(self, fingerprint: Fingerprint) -> None:
        for key in bands(fingerprint.minhash):
            self._buckets.setdefault(key, []).append(fingerprint)

    def extend(self, fingerprints: Iterable[Fingerprint]) -> None:
        for fingerprint in fingerprints:
            self.add(fingerprint)

    def match(self, fingerprint: Fingerprint) -> tuple[str, float] | None:
        """(article id, similarity) of the most similar other article over the threshold."""
        best: tuple[str, float] | None = None
        seen: set[str] = set()
        for key in bands(fingerprint.minhash):
            for other in self._buckets.get(key, ()):
                if other.article_id == fingerprint.article_id or other.article_id in seen:
                    continue
                seen.add(other.article_id)
                score = similarity(fingerprint.minhash, other.minhash)
                if (score >= THRESHOLD and titles_agree(fingerprint.title_key, other.title_key)
                        and (best is None or score > best[1])):
                    best = (other.article_id, score)
        return best
