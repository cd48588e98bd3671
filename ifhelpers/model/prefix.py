"""Which token prefixes a run of texts shares, and which of them are worth computing once (prefix caching).

The book's prompts repeat long beginnings: SmolLM2's chat template puts the same system prompt before
every query, an MMLU question's instruction and stem are the same under every option ordering, and
the ParaRel templates of one fact often begin with its subject. A causal model's states at a position
depend only on the tokens up to it, so the keys and values of a shared prefix can be computed once and
every continuation run on top of them.

:func:`plan` works on the *full* tokenization of each text (so a shared prefix always ends on a token
boundary the full text has; nothing is re-tokenized) and builds a radix tree of the token sequences.
A branching point of the tree becomes a *cached node* when enough texts pass through it and the segment
it adds to its nearest cached ancestor is long enough to pay for an extra pass
(``(texts - 1) * segment >= min_saving`` and ``segment >= min_segment``). Each text becomes a *leaf*
whose tokens after its cached ancestor are its suffix. A text's captured position (the token whose
states a chapter reads; the last token for the next-token prediction) must lie in its suffix, so a
node deeper than that position is never its ancestor; a text with no usable ancestor runs whole.

The plan only says what to compute; :mod:`ifhelpers.model.engine` runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Node:
    """A cached prefix: the tokens ``[start, end)`` of text ``text`` on top of node ``parent`` (-1: none)."""

    parent: int
    text: int
    start: int
    end: int


@dataclass(frozen=True)
class Plan:
    """Cached nodes (parents listed before their children) and, per text, its ancestor and suffix start."""

    nodes: tuple[Node, ...]
    leaf_parent: tuple[int, ...]
    leaf_start: tuple[int, ...]

    @classmethod
    def unshared(cls, n_texts: int) -> "Plan":
        """The plan that shares nothing: every text runs whole."""
        return cls((), (-1,) * n_texts, (0,) * n_texts)

    def tokens_computed(self, lengths: Sequence[int]) -> int:
        """Token positions this plan runs (cached segments once, every suffix)."""
        return sum(n.end - n.start for n in self.nodes) + sum(n - s for n, s in zip(lengths, self.leaf_start))

    def depth(self) -> int:
        """How many cached nodes the longest chain stacks (0: nothing shared)."""
        depth = [0] * len(self.nodes)
        for i, node in enumerate(self.nodes):
            depth[i] = 1 + (depth[node.parent] if node.parent >= 0 else 0)
        return max(depth, default=0)


def plan(ids: Sequence[Sequence[int]], positions: Sequence[int], *, min_segment: int = 2,
         min_saving: int = 16) -> Plan:
    """Group token sequences ``ids`` by shared prefixes; ``positions[i]`` is text i's captured token (>= 0).

    A text's suffix always holds its last token and its captured position. See the module docstring
    for the rule that makes a branching point a cached node.
    """
    if len(ids) != len(positions):
        raise ValueError(f"{len(positions)} positions for {len(ids)} token sequences")
    limit = []
    for seq, pos in zip(ids, positions):
        if not 0 <= pos < len(seq):
            raise IndexError(f"captured position {pos} is outside a sequence of {len(seq)} tokens")
        limit.append(pos)  # the deepest an ancestor may end: the captured token stays in the suffix
    nodes: list[Node] = []
    leaf_parent = [-1] * len(ids)
    leaf_start = [0] * len(ids)

    # Iterative depth-first walk over groups of texts that share ids[i][:depth].
    order = sorted(range(len(ids)), key=lambda i: ids[i])
    stack = [(order, 0, -1, 0)]  # (members, shared depth, cached ancestor, ancestor's end)
    while stack:
        members, depth, anchor, anchor_end = stack.pop()
        # The radix edge: extend the shared depth while every member that may go deeper agrees.
        deep = [i for i in members if limit[i] > depth]
        for i in members:
            if limit[i] <= depth:
                leaf_parent[i], leaf_start[i] = anchor, anchor_end
        if not deep:
            continue
        first, end = ids[deep[0]], depth
        shortest = min(limit[i] for i in deep)
        while end < shortest and all(ids[i][end] == first[end] for i in deep):
            end += 1
        if end > depth and len(deep) >= 2 and end - anchor_end >= min_segment \
                and (len(deep) - 1) * (end - anchor_end) >= min_saving:
            nodes.append(Node(anchor, deep[0], anchor_end, end))
            anchor, anchor_end = len(nodes) - 1, end
        # Texts that may go no deeper than ``end`` hang here; the others split by their next token.
        children: dict[int, list[int]] = {}
        for i in deep:
            if limit[i] <= end:
                leaf_parent[i], leaf_start[i] = anchor, anchor_end
            else:
                children.setdefault(ids[i][end], []).append(i)
        for group in reversed(list(children.values())):
            stack.append((group, end, anchor, anchor_end))
    return Plan(tuple(nodes), tuple(leaf_parent), tuple(leaf_start))
