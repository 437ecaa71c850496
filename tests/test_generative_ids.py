"""ID tokens and the trie of valid IDs (pure numpy/torch, no model)."""

import itertools

import numpy as np
import pytest
import torch

from indexbench.generative.id_tokens import IdTrie, IdVocabulary


def test_vocabulary_lays_positions_out_one_after_another():
    vocab = IdVocabulary(base=100, codebook_sizes=(4, 3, 5))
    assert vocab.offsets == (100, 104, 107)
    assert vocab.size == 12
    assert vocab.rows(1) == slice(104, 107)
    assert vocab.tokens(np.array([[3, 2, 4]])).tolist() == [[103, 106, 111]]
    assert vocab.tokens(torch.tensor([[0, 1]])).tolist() == [[100, 105]]


def test_trie_children_are_exactly_the_valid_continuations():
    codes = np.array([[1, 0, 2], [1, 0, 0], [0, 2, 1], [1, 1, 0], [3, 0, 0]])
    trie = IdTrie(codes, (4, 3, 3))
    row, code, child = trie.children(0, torch.tensor([0]))
    assert code.tolist() == [0, 1, 3]  # sorted codes under the root
    # Walk every valid ID through `children` and land on the right document.
    for doc, path in enumerate(codes.tolist()):
        node = torch.tensor([0])
        for t, c in enumerate(path):
            _, cs, ch = trie.children(t, node)
            assert c in cs.tolist()
            node = ch[cs.tolist().index(c)].view(1)
        assert trie.leaf_doc[int(node)] == doc
    # A batch of nodes: rows say which node each edge leaves.
    first = {c: int(n) for c, n in zip(code.tolist(), child.tolist())}
    row, code, _ = trie.children(1, torch.tensor([first[1], first[0], first[1]]))
    assert row.tolist() == [0, 0, 1, 2, 2] and code.tolist() == [0, 1, 2, 0, 1]


def test_trie_membership_and_errors():
    codes = np.array(list(itertools.product(range(2), range(2))))
    trie = IdTrie(codes, (2, 2))
    assert trie.contains((1, 0)) and not trie.contains((2, 0)) and not trie.contains((1,))
    with pytest.raises(ValueError, match="share a full ID"):
        IdTrie(np.array([[0, 1], [0, 1]]), (2, 2))
    with pytest.raises(ValueError, match="shape"):
        IdTrie(np.array([[0, 1, 1]]), (2, 2))
