"""SEAL-like retrieval (Bevilacqua et al., "Autoregressive Search Engines: Generating Substrings
as Document Identifiers", NeurIPS 2022): any n-gram that occurs in the corpus is an identifier.

``--indexer seal`` indexes the corpus's token stream (`indexbench.ngram_index.CorpusIndex`, a
suffix array), fine-tunes the engine's backbone to write n-grams of the relevant documents
(query → a span of the document near the query's words, query → its title, and, where a
document is a fair query for itself, a span → another span of the same document), then for a
query decodes n-grams with a beam search constrained to the corpus and scores every document by
the evidence of the n-grams it contains (`_scoring`).

It is a retrieving indexer (it assigns no IDs), so it runs in document-retrieval, product-search
and recommendation, not in id-quality. The engine's options (``backbone``, ``max_steps``,
``batch_size``, ``lr``, ...) mean what they mean for the ID indexers, so a grid compares it with
them at the same budget: ``-i seal:max_steps=200,hc:max_steps=200``.

Departures from SEAL, all forced by what is available here or chosen for the corpora's size:

* The backbone is the engine's (MiniLM encoder + warm-started decoder on MiniLM's WordPiece
  vocabulary), not BART-large; n-grams are WordPiece tokens, not BPE. MiniLM ships no LM head,
  so the fresh head's transform is first fitted to write the input's words
  (``text_head=lexical``, `indexbench.generative.text_head`) -- BART starts as a pretrained
  denoiser that copies its input; ours would otherwise write the same words for every query.
* A suffix array instead of an FM-index: the same queries, uncompressed (a few MB here).
* Training spans start on a document token that the query has, chosen in proportion to its
  IDF (``span_starts=idf``; the authors use fuzzy string matching of word trigrams, without
  stopwords), ``span_length`` = 10 tokens.
* Every occurrence of an n-gram is evidence (the authors cap the first stage at 1,500
  occurrences and fully rescore the best 500 documents); the coverage discount runs over token
  types of the n-grams a document contains, as theirs does.
* ``copy_bias`` adds a constant to the logits of the query's own tokens, in training and in
  search: a copy prior standing in for what BART's denoising pre-training gives SEAL.
* Unigram evidence is off by default (``unigram_evidence=1000`` turns on SEAL's 1,000 best
  first-step tokens).

Importing this module is cheap: torch, transformers and the index load inside `build_retriever`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from indexbench import IndexerEntry, hookimpl, option
from indexbench.generative import GenerativeOptions
from indexbench.options import check_options

__version__ = "0.3.0"
"""Part of every cache key: bump it when a change alters the index, the targets or the model."""


@dataclass
class SealConfig(GenerativeOptions):
    """Options of ``--indexer seal:key=value:...``: the engine's, plus

    * ``max_ngram`` -- tokens an n-gram may have (SEAL: 10).
    * ``num_beams`` -- beams of the n-gram search (SEAL: 15); every beam prefix is a candidate.
    * ``alpha`` -- the power of an n-gram's weight (SEAL: 2).
    * ``coverage`` -- how much of an n-gram's weight its already-covered tokens lose (SEAL: 0.8).
    * ``smoothing`` -- added to an n-gram's corpus count in P(n) (SEAL: 5).
    * ``unigram_evidence`` -- also score the k likeliest first tokens as unigrams (0 = off).
    * ``span_length`` -- tokens of a training target span (SEAL: 10).
    * ``spans_per_pair`` -- target spans drawn per training (query, document) pair.
    * ``span_starts`` -- where a query's target span starts among the document's tokens that
      the query has: ``idf`` (in proportion to the token's IDF: rare words, as SEAL's matching
      without stopwords) or ``uniform`` (any match; '.' and 'of' then start most spans on SciFact).
    * ``title_targets`` -- also train query → the document's title, where there is one.
    * ``index_max_length`` -- tokens of each document that are indexed (and so can be generated).
    * ``text_head`` -- "lexical": before training, fit a fresh text head (minilm-encdec's) so the
      decoder starts out writing its input's words (`indexbench.generative.text_head`); "none":
      keep the head as the backbone builds it. A pretrained head (T5, BART) is never touched.
    * ``copy_bias`` -- added to the logit of every token of the query, in training and search
      (`indexbench.generative.ngram_decoding.input_token_bias`): a copy prior (0 = off). 8 was
      best of 0/2/4/8 untrained on amazon product search, and after 200 training steps it
      still gives over five times the ndcg@5 of no prior (benchmarks/LOG.md, "Session 14").
    * ``train`` -- false: use the backbone as it comes (the decoder is then an untrained LM, but
      every result is still a valid, scored ranking).
    """

    dev_queries: int = option(100, ge=1)
    """Dev queries each check decodes: n-gram decoding is slower than ID decoding, so fewer than
    the engine's 200."""

    num_beams: int = option(15, ge=1)
    max_ngram: int = option(10, ge=1)
    alpha: float = option(2.0, gt=0)
    coverage: float = option(0.8, ge=0, le=1)
    smoothing: float = option(5.0, ge=0)
    unigram_evidence: int = option(0, ge=0)
    span_length: int = option(10, ge=1)
    spans_per_pair: int = option(1, ge=1)
    span_starts: str = option("idf", choices=("idf", "uniform"))
    title_targets: bool = True
    index_max_length: int = option(512, ge=1)
    text_head: str = option("lexical", choices=("lexical", "none"))
    copy_bias: float = option(8.0, ge=0)
    train: bool = True


class SealIndexer:
    """A retrieving indexer: corpus n-gram index + constrained n-gram generation + evidence."""

    name = "seal"
    version = __version__

    def __init__(self, config: SealConfig | None = None):
        self.config = config or SealConfig()
        check_options(self.config, "indexer 'seal'")
        self.details: dict = {}

    def build_retriever(self, problem, ctx):
        from ._retriever import build_retriever

        return build_retriever(self, problem, ctx)

    def __repr__(self) -> str:
        return f"SealIndexer({asdict(self.config)})"


@hookimpl
def register_indexers(register):
    register(
        IndexerEntry(
            name="seal",
            factory=SealIndexer,
            config_class=SealConfig,
            description="SEAL-like: any corpus n-gram is an identifier; constrained n-gram decoding on the "
            "engine's backbone over a suffix array, documents scored by n-gram evidence",
            kind="retrieval",
        )
    )


__all__ = ["SealConfig", "SealIndexer", "register_indexers"]
