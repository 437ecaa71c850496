"""The built-in ``sample`` dataset: a small product catalog generated in code, so the first
command of the README runs with no download.

It is built to exercise every task, not to be realistic: a category tree ``Sample Store`` ->
5 departments -> 3 categories each -> 3 product types each; products whose words come mostly from
their own type, category and department (plus generic words, cross-category brands and a
mention of an unrelated product as noise); users who mostly shop in one department; and
BEIR-style queries ("a <type noun> with <feature>") whose relevant products are the 1-2 products
of that type with that feature. Like the real Amazon data, a few products have a shorter or
empty category path. Everything comes from one fixed-seed `random.Random`, and only from lists
(never from set or dict iteration of unordered data), so every process builds the same bytes.
"""

from __future__ import annotations

import random
from string import capwords

from ..data import Corpus, Dataset, Document
from .amazon import product_text

NAME = "sample"
ROOT = "Sample Store"
SEED = 20240613
N_USERS = 300
N_TRAIN_QUERIES = 150
N_TEST_QUERIES = 60
PRODUCTS_PER_TYPE = 6
N_CATEGORY_ONLY = 20  # products whose path stops at level 3 (no product type)
N_DEPARTMENT_ONLY = 5  # ... at level 2
N_UNCATEGORIZED = 5  # ... with an empty path, like 131 real Amazon items

# department -> (brands, settings, {category -> (features, uses, {product type -> nouns})})
_TREE: dict[str, tuple[list[str], list[str], dict[str, tuple[list[str], list[str], dict[str, list[str]]]]]] = {
    "Kitchen & Dining": (
        ["Hearthware", "CopperLeaf", "Brewmaster", "Kitchora"],
        ["home kitchens", "family dinners", "meal prep"],
        {
            "Coffee & Tea": (
                ["programmable timer", "thermal carafe", "keep warm plate", "auto shutoff",
                 "removable water tank"],
                ["morning coffee", "brewing tea", "a fresh brew"],
                {"Espresso Machines": ["espresso machine", "espresso maker"],
                 "Drip Coffee Makers": ["drip coffee maker", "coffee brewer"],
                 "Electric Kettles": ["electric kettle", "tea kettle"]},
            ),
            "Cookware": (
                ["nonstick coating", "cast iron base", "tempered glass lid", "stay cool handle",
                 "induction ready bottom"],
                ["searing steaks", "simmering sauces", "slow braising"],
                {"Frying Pans": ["frying pan", "skillet"],
                 "Stock Pots": ["stock pot", "soup pot"],
                 "Dutch Ovens": ["dutch oven", "casserole pot"]},
            ),
            "Cutlery": (
                ["high carbon steel", "ergonomic grip", "full tang blade", "ceramic wheel", "granton edge"],
                ["slicing vegetables", "dicing onions", "carving roasts"],
                {"Chef Knives": ["chef knife", "cook's knife"],
                 "Knife Sets": ["knife block set", "cutlery set"],
                 "Knife Sharpeners": ["knife sharpener", "honing rod"]},
            ),
        },
    ),
    "Garden & Outdoor": (
        ["GreenThumb", "Terravista", "Yardcraft", "Bloomfield"],
        ["backyards", "patios", "vegetable gardens"],
        {
            "Watering": (
                ["brass fittings", "kink resistant design", "adjustable spray pattern", "leak proof connector",
                 "uv resistant material"],
                ["watering lawns", "irrigating flower beds", "thirsty plants"],
                {"Garden Hoses": ["garden hose", "expandable hose"],
                 "Sprinklers": ["lawn sprinkler", "oscillating sprinkler"],
                 "Watering Cans": ["watering can", "plant mister"]},
            ),
            "Hand Tools": (
                ["carbon steel blade", "cushioned handle", "rust resistant finish", "ratchet mechanism",
                 "hanging hole"],
                ["trimming shrubs", "planting bulbs", "clearing leaves"],
                {"Pruning Shears": ["pruning shears", "bypass pruner"],
                 "Trowels": ["hand trowel", "transplanting spade"],
                 "Rakes": ["leaf rake", "garden rake"]},
            ),
            "Grills": (
                ["porcelain grates", "built-in thermometer", "side shelves", "ash catcher",
                 "electronic ignition"],
                ["backyard barbecue", "smoking brisket", "grilling burgers"],
                {"Charcoal Grills": ["charcoal grill", "kettle grill"],
                 "Gas Grills": ["gas grill", "propane grill"],
                 "Smokers": ["pellet smoker", "barbecue smoker"]},
            ),
        },
    ),
    "Electronics": (
        ["Voltara", "Nexwave", "Pixelon", "Sonique"],
        ["home offices", "travel", "living rooms"],
        {
            "Audio": (
                ["active noise cancelling", "30 hour battery", "deep bass", "water resistant rating",
                 "built-in microphone"],
                ["listening to music", "podcasts", "phone calls"],
                {"Headphones": ["over-ear headphones", "wireless headset"],
                 "Bluetooth Speakers": ["bluetooth speaker", "portable speaker"],
                 "Earbuds": ["true wireless earbuds", "in-ear buds"]},
            ),
            "Computer Accessories": (
                ["usb-c connection", "rgb backlight", "plug and play setup", "aluminum housing",
                 "multi-device pairing"],
                ["typing", "gaming sessions", "laptop setups"],
                {"Keyboards": ["mechanical keyboard", "wireless keyboard"],
                 "Mice": ["ergonomic mouse", "optical mouse"],
                 "USB Hubs": ["usb hub", "docking adapter"]},
            ),
            "Power": (
                ["fast charging", "overcurrent protection", "compact size", "led indicator", "dual ports"],
                ["charging phones", "powering tablets", "charging on the go"],
                {"Power Banks": ["power bank", "portable charger"],
                 "Wall Chargers": ["wall charger", "charging adapter"],
                 "Charging Cables": ["charging cable", "braided cord"]},
            ),
        },
    ),
    "Sports & Fitness": (
        ["Peakform", "Stridex", "Ironvale", "Aquafin"],
        ["home gyms", "outdoor training", "weekend workouts"],
        {
            "Yoga": (
                ["non-slip texture", "extra thick cushioning", "eco friendly foam", "carrying strap",
                 "alignment lines"],
                ["stretching", "pilates classes", "hot yoga"],
                {"Yoga Mats": ["yoga mat", "exercise mat"],
                 "Yoga Blocks": ["yoga block", "foam brick"],
                 "Yoga Straps": ["yoga strap", "stretch band"]},
            ),
            "Strength Training": (
                ["knurled handle", "rubber coating", "quick weight change", "color coded levels",
                 "storage tray"],
                ["strength workouts", "muscle toning", "circuit training"],
                {"Dumbbells": ["adjustable dumbbells", "dumbbell set"],
                 "Kettlebells": ["kettlebell", "cast iron kettlebell"],
                 "Resistance Bands": ["resistance bands", "loop bands"]},
            ),
            "Cycling": (
                ["rechargeable battery", "reflective details", "lightweight shell", "weatherproof build",
                 "quick release mount"],
                ["commuting", "night rides", "mountain trails"],
                {"Bike Helmets": ["bike helmet", "cycling helmet"],
                 "Bike Lights": ["bike light", "headlight set"],
                 "Bike Locks": ["bike lock", "u-lock"]},
            ),
        },
    ),
    "Office Supplies": (
        ["Paperloft", "Inkwell", "Deskmate", "Scribeline"],
        ["offices", "classrooms", "home study"],
        {
            "Writing Instruments": (
                ["quick dry ink", "fine point tip", "refillable cartridge", "smear proof", "assorted colors"],
                ["note taking", "journaling", "annotating textbooks"],
                {"Gel Pens": ["gel pen", "rollerball pen"],
                 "Fountain Pens": ["fountain pen", "calligraphy pen"],
                 "Highlighters": ["highlighter", "marker pen"]},
            ),
            "Paper Products": (
                ["acid free sheets", "college ruled", "recycled paper", "bright white finish",
                 "perforated pages"],
                ["printing reports", "jotting reminders", "lecture notes"],
                {"Notebooks": ["spiral notebook", "composition notebook"],
                 "Sticky Notes": ["sticky notes", "adhesive notes"],
                 "Printer Paper": ["printer paper", "copy paper"]},
            ),
            "Desk Organization": (
                ["metal mesh", "multiple compartments", "label tabs", "jam free mechanism",
                 "space saving design"],
                ["organizing paperwork", "filing invoices", "tidying desks"],
                {"Desk Organizers": ["desk organizer", "pen holder"],
                 "File Folders": ["file folder", "document folder"],
                 "Staplers": ["stapler", "heavy duty stapler"]},
            ),
        },
    ),
}

# Words every department shares, so that no single word gives a product away.
_SHARED_BRANDS = ["Northstar", "Acme Basics"]
_ADJECTIVES = ["Premium", "Durable", "Classic", "Compact", "Professional", "Everyday", "Deluxe", "Lightweight"]
_CLOSERS = [
    "Easy to clean and built to last.",
    "Backed by a one year warranty.",
    "A great gift for friends and family.",
    "Ships in recyclable packaging.",
    "Customers love the value for money.",
    "Simple setup right out of the box.",
]
_SETTING_SENTENCES = [
    "A reliable pick for {setting}, designed for daily use.",
    "Made with {setting} in mind and sized to fit most spaces.",
    "Popular for {setting} thanks to its sturdy, simple build.",
]
_QUERY_TEMPLATES = [
    "{noun} with {feature}",
    "{feature} {noun}",
    "{noun} that has {feature} for {use}",
    "looking for {noun} with {feature}",
    "best {noun} with {feature} for {setting}",
]


def _describe(rng: random.Random, noun: str, feature: str | None, use: str, setting: str,
              noise_noun: str | None) -> str:
    """A 20-40 word description built from the product's own vocabulary plus shared filler."""
    opening = f"This {rng.choice(_ADJECTIVES).lower()} {noun}"
    opening += f" comes with {feature} and is made for {use}." if feature else f" is made for {use}."
    sentences = [
        opening,
        rng.choice(_SETTING_SENTENCES).format(setting=setting),
        rng.choice(_CLOSERS),
    ]
    if noise_noun:
        sentences.append(f"Pairs well with our {noise_noun}.")
    return " ".join(sentences)


def _make_product(rng: random.Random, product_id: str, path: tuple[str, ...], brands: list[str],
                  settings: list[str], noun: str, feature: str | None, use: str,
                  all_nouns: list[str]) -> Document:
    brand = rng.choice(_SHARED_BRANDS) if rng.random() < 0.2 else rng.choice(brands)
    adjective = rng.choice(_ADJECTIVES)
    title = f"{adjective} {capwords(noun)}"
    title += f" with {capwords(feature)} for {capwords(use)}" if feature else f" for {capwords(use)}"
    noise = rng.choice(all_nouns) if rng.random() < 0.25 else None
    description = _describe(rng, noun, feature, use, rng.choice(settings), noise)
    return Document(id=product_id, title=title, text=product_text(title, brand, description),
                    categories=path)


Group = tuple[str, str, str, str]  # (department, category, product type, feature)


def _catalog(rng: random.Random) -> tuple[list[Document], dict[Group, list[str]]]:
    """All products, plus the ids of each (product type, feature) group for building queries."""
    all_nouns = [noun for _, _, cats in _TREE.values() for _, _, types in cats.values()
                 for nouns in types.values() for noun in nouns]
    products: list[Document] = []
    groups: dict[Group, list[str]] = {}

    def add(path, brands, settings, noun, feature, use) -> str:
        product_id = str(len(products))
        products.append(_make_product(rng, product_id, path, brands, settings, noun, feature, use, all_nouns))
        return product_id

    for dept, (brands, settings, cats) in _TREE.items():
        for cat, (features, uses, types) in cats.items():
            for ptype, nouns in types.items():
                # Each product of a type gets one feature; cycling through a shuffled list makes
                # groups of 1 or 2 products, which the queries then ask for.
                order = rng.sample(features, len(features))
                for i in range(PRODUCTS_PER_TYPE):
                    feature = order[i % len(order)]
                    noun = nouns[0] if rng.random() < 0.7 else nouns[1]
                    pid = add((ROOT, dept, cat, ptype), brands, settings, noun, feature, rng.choice(uses))
                    groups.setdefault((dept, cat, ptype, feature), []).append(pid)

    # Products with shorter paths: tasks must leave them out of the levels they lack. They name
    # no feature, so no query's unjudged answer hides among them.
    departments = list(_TREE)
    for i in range(N_CATEGORY_ONLY + N_DEPARTMENT_ONLY + N_UNCATEGORIZED):
        dept = departments[i % len(departments)]
        brands, settings, cats = _TREE[dept]
        cat = rng.choice(list(cats))
        _, uses, types = cats[cat]
        noun = rng.choice(rng.choice(list(types.values())))
        if i < N_CATEGORY_ONLY:
            path: tuple[str, ...] = (ROOT, dept, cat)
        elif i < N_CATEGORY_ONLY + N_DEPARTMENT_ONLY:
            path = (ROOT, dept)
        else:
            path = ()
        add(path, brands, settings, noun, None, rng.choice(uses))
    return products, groups


def _queries(rng: random.Random, groups: dict[Group, list[str]]
             ) -> tuple[dict[str, str], dict[str, dict[str, dict[str, int]]]]:
    """BEIR-style queries: one per (type, feature) group, split into train and test."""
    keys = list(groups)
    rng.shuffle(keys)
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, dict[str, int]]] = {"train": {}, "test": {}}
    for n, key in enumerate(keys[: N_TRAIN_QUERIES + N_TEST_QUERIES]):
        dept, cat, ptype, feature = key
        _, settings, cats = _TREE[dept]
        _, uses, types = cats[cat]
        text = rng.choice(_QUERY_TEMPLATES).format(
            noun=rng.choice(types[ptype]), feature=feature, use=rng.choice(uses), setting=rng.choice(settings),
        )
        query_id = f"q{n + 1}"
        queries[query_id] = text
        split = "train" if n < N_TRAIN_QUERIES else "test"
        qrels[split][query_id] = {pid: 1 for pid in groups[key]}
    return queries, qrels


def _interactions(rng: random.Random, products: list[Document]) -> dict[str, list[str]]:
    """Time-ordered sequences of 5-12 items; a user mostly stays in one department, often in the
    category of the previous item, and prefers popular items, so recommendation has signal."""
    popularity = [rng.choice([1, 1, 1, 2, 3, 5, 8]) for _ in products]
    by_dept: dict[str, list[int]] = {}
    by_cat: dict[tuple[str, ...], list[int]] = {}
    for row, doc in enumerate(products):
        if len(doc.categories) >= 2:
            by_dept.setdefault(doc.categories[1], []).append(row)
        if len(doc.categories) >= 3:
            by_cat.setdefault(doc.categories[:3], []).append(row)
    everything = list(range(len(products)))
    departments = list(_TREE)

    interactions: dict[str, list[str]] = {}
    for user in range(N_USERS):
        home = rng.choice(departments)
        history: list[int] = []
        for _ in range(rng.randint(5, 12)):
            r = rng.random()
            last = products[history[-1]].categories if history else ()
            if r < 0.45 and len(last) >= 3:
                pool = by_cat[last[:3]]
            elif r < 0.85:
                pool = by_dept[home]
            else:
                pool = everything
            candidates = [row for row in pool if row not in history] or [
                row for row in everything if row not in history]
            history.append(rng.choices(candidates, weights=[popularity[row] for row in candidates])[0])
        interactions[str(user)] = [products[row].id for row in history]
    return interactions


def load_sample() -> Dataset:
    """Generate the sample dataset (deterministic: same fingerprint in every process)."""
    rng = random.Random(SEED)
    products, groups = _catalog(rng)
    queries, qrels = _queries(rng, groups)
    interactions = _interactions(rng, products)
    return Dataset(name=NAME, corpus=Corpus(products), queries=queries, qrels=qrels,
                   interactions=interactions, source="indexbench.datasets.sample (generated in code)")
