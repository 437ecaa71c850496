"""An example indexbench plugin: one retrieving indexer and one ID indexer, no dependencies.

* ``word-overlap`` ranks documents by how many distinct query words they contain.
* ``title-letters`` gives each document the ID (first letter, second letter, de-dup counter) of
  its title: a deliberately naive semantic ID, so id-quality has something to measure; the
  core's generative engine makes it a retriever for the ranking tasks.
"""

from collections import Counter
from dataclasses import dataclass

from indexbench import hookimpl
from indexbench.data import SemanticIds
from indexbench.generative import GenerativeOptions
from indexbench.registry import IndexerEntry

__version__ = "0.3.0"


@dataclass
class OverlapConfig:
    lowercase: bool = True


class WordOverlapRetriever:
    def __init__(self, corpus, lowercase):
        self.lowercase = lowercase
        self.ids = corpus.ids
        self.words = [self._words(text) for text in corpus.texts]

    def _words(self, text):
        return set((text.lower() if self.lowercase else text).split())

    def search(self, queries, k):
        out = []
        for query in queries:
            q = self._words(query)
            scored = sorted(((len(q & w), -row) for row, w in enumerate(self.words)), reverse=True)[:k]
            out.append([(self.ids[-neg_row], float(score)) for score, neg_row in scored])
        return out


class WordOverlapIndexer:
    name = "word-overlap"

    def __init__(self, config):
        self.config = config

    def build_retriever(self, problem, ctx):
        return WordOverlapRetriever(problem.corpus, self.config.lowercase)


@dataclass
class LettersConfig(GenerativeOptions):
    """Inheriting the engine's options lets users tune how the ID generator is trained."""

    buckets: int = 8


class TitleLettersIndexer:
    name = "title-letters"

    def __init__(self, config):
        self.config = config

    def assign_ids(self, corpus, ctx):
        k = self.config.buckets
        ids, used = {}, Counter()
        for doc in corpus:
            title = (doc.title or doc.text).lower() + "  "
            prefix = (ord(title[0]) % k, ord(title[1]) % k)
            ids[doc.id] = (*prefix, used[prefix])
            used[prefix] += 1
        return SemanticIds(ids=ids, codebook_sizes=(k, k, max(used.values())))


@hookimpl
def register_indexers(register):
    register(IndexerEntry(name="word-overlap", factory=WordOverlapIndexer, config_class=OverlapConfig,
                          description="count of shared query words (example plugin)"))
    register(IndexerEntry(name="title-letters", factory=TitleLettersIndexer, config_class=LettersConfig,
                          description="IDs from title letters (example plugin)", kind="ids"))
