"""What the bench entry points share: corpus readers, scoring, a local site.

`bench/*.py` are entry points only (a command line each); whatever two of them use lives
here and is imported as `from bench.lib.X import ...` with the repo root on sys.path.
`polnear` reads the PolNeAR splits and scores claims against their gold attributions
(`match`, `speaker_right`, `prf`; claims_polnear and the claims training scripts);
`claims_training` fits the cue classifier (`cue_candidates`, `fit_cues`, `reset_extractor`,
`UNPARSED_MAX_LOSS`; train_claims_cues, train_claims_filter, claims_polnear --learn);
`aeb` reads the article-extraction-benchmark pages and computes its 4-gram metric
(`read_pages`, `score`, `is_holdout`; extract_aeb); `newsite` builds and serves a local
news site on 127.0.0.1 (fetch_bench, e2e_bench).
"""
