"""Claims in article bodies: who said what, about whom. Pure: text in, drafts out.

Start at `extract_claims_many`. The extractor parses the sentences worth parsing
(`parse`: cue words from the `lexicon` and the learnt cue model `cuemodel`/`cues`),
keeps a claim only if the learnt `filter` passes it,
finds quotations on the raw text (`quotes`) and resolves speakers (`speakers`). Where the
rules found no claim, a learnt span tagger (`tagger`, six MiniLM layers in int8) marks cue, source
and content words and `tagged` turns what it marks into claims its own filter passes. Its
model files live in `models/`.
"""

from __future__ import annotations

from tasks.claims.extractor import (
    claims_with_keys,
    content_is_clean,
    extract_claims,
    extract_claims_many,
    load_nlp,
)

__all__ = ["claims_with_keys", "content_is_clean", "extract_claims", "extract_claims_many",
           "load_nlp"]
