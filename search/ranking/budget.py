"""What one search may cost: limits checked before any work, and its weight in search slots.

Every search is planned first (:func:`plan_search`): the text is parsed and each limit checked,
so a request over a limit is refused (:class:`QueryError`: a 422 naming the limit) before it
reads the index or runs the model. The plan's :attr:`SearchPlan.slots` is what the request
weighs against the server's ``search_threads``: a deep window, a narrowed search, a long query
or evidence embedded now takes slots in proportion to the work, so a burst of expensive
requests cannot crowd out the plain ones.

The limits, and what each bounds (issue 27):

* ``MAX_TERMS`` phrases and exclusions, each at most ``MAX_TERM_CHARS`` characters: each is a
  substring test on every candidate passage;
* ``k + offset`` at most ``MAX_NARROWED_WINDOW`` when phrases, exclusions or ``collapse=doc``
  narrow the candidates: such a search reads the text of ``16 * (k + offset)`` candidates, and
  collapsing compares them pairwise;
* ``evidence`` at most ``MAX_EVIDENCE_HITS`` hits, and at most ``MAX_EVIDENCE_SENTENCES``
  sentences embedded in one request (hits past the budget keep their stored evidence).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from search.errors import InvalidInput
from search.ranking.query import ParsedQuery, QuerySyntaxError, parse_query
from search.types import Mode

MAX_QUERY_CHARS = 2000
MAX_K = 100
MAX_OFFSET = 1000
MAX_NARROWED_WINDOW = 200
MAX_TERMS = 16
MAX_TERM_CHARS = 100
MAX_EVIDENCE_HITS = 10  # evidence embeds the sentences of each hit: bounded per query
MAX_EVIDENCE_SENTENCES = 64
MIN_CANDIDATES = 100
PRECISION_POOL = 4  # phrases, exclusions and collapsing drop candidates: fetch this many times more
#: Candidates one search slot pays for (a plain first page: 100; a narrowed one: 400).
CANDIDATES_PER_SLOT = MIN_CANDIDATES * PRECISION_POOL
#: Slots per hit whose sentences are embedded now (a hit's sentences cost about as much model time
#: as a batch of queries).
SLOTS_PER_EVIDENCE_HIT = 3
#: Query characters one more slot pays for: the model's time grows with the query's tokens (a
#: 1,300-character query took six times as long to embed as a short one).
QUERY_CHARS_PER_SLOT = 250


class QueryError(InvalidInput):
    """A query that cannot be run (empty, too long, bad parameters, over a cost limit)."""


@dataclass(frozen=True)
class SearchPlan:
    """A search checked against every limit: its parsed text, window, candidate pool and weight."""

    query: str
    parsed: ParsedQuery
    mode: Mode
    k: int
    offset: int
    collapse: bool
    evidence: int

    @property
    def wanted(self) -> int:
        return self.k + self.offset

    @property
    def narrowed(self) -> bool:
        """Phrases, exclusions or collapsing drop candidates: the pool is larger and its texts are read."""
        return self.parsed.constrained or self.collapse

    @property
    def pool(self) -> int:
        """Candidates fetched from each of the dense and keyword searches."""
        return max(MIN_CANDIDATES, 4 * self.wanted) * (PRECISION_POOL if self.narrowed else 1)

    @property
    def slots(self) -> int:
        """Search slots this search weighs: 1 for a short question's plain first page, more for more
        candidates, a longer query and evidence embedded now."""
        return (math.ceil(self.pool / CANDIDATES_PER_SLOT) + len(self.query) // QUERY_CHARS_PER_SLOT
                + SLOTS_PER_EVIDENCE_HIT * self.evidence)


def parse_enum(kind: type[Enum], value: object, name: str):
    """``value`` as a member of ``kind`` (None stays None), or a QueryError naming the choices."""
    if value is None or isinstance(value, kind):
        return value
    try:
        return kind(value)
    except ValueError:
        raise QueryError(f"{name} must be one of {', '.join(member.value for member in kind)}, not {value!r}") from None


def plan_search(query: str, k: int = 10, mode: Mode | str = Mode.HYBRID, offset: int = 0, collapse: bool = False,
                evidence: int = 0) -> SearchPlan:
    """The search's plan, or a :class:`QueryError` naming the first limit it breaks (no work done)."""
    query = (query or "").strip()
    if not query:
        raise QueryError("query is empty")
    if len(query) > MAX_QUERY_CHARS:
        raise QueryError(f"query is longer than {MAX_QUERY_CHARS} characters")
    if not 1 <= k <= MAX_K:
        raise QueryError(f"k must be between 1 and {MAX_K}")
    if not 0 <= offset <= MAX_OFFSET:
        raise QueryError(f"offset must be between 0 and {MAX_OFFSET}")
    if not 0 <= evidence <= MAX_EVIDENCE_HITS:
        raise QueryError(f"evidence must be between 0 and {MAX_EVIDENCE_HITS} hits")
    mode = parse_enum(Mode, mode, "mode")
    try:
        parsed = parse_query(query)
    except QuerySyntaxError as error:
        raise QueryError(str(error)) from None
    _check_terms(parsed)
    plan = SearchPlan(query, parsed, mode, k, offset, collapse, evidence)
    if plan.narrowed and plan.wanted > MAX_NARROWED_WINDOW:
        raise QueryError(f"k + offset must be at most {MAX_NARROWED_WINDOW} with quoted phrases, -exclusions or "
                         f"collapse=doc (limit MAX_NARROWED_WINDOW; this asks for {plan.wanted})")
    return plan


def _check_terms(parsed: ParsedQuery) -> None:
    """At most ``MAX_TERMS`` phrases and exclusions as written (repeats count), each short enough."""
    if parsed.written_terms > MAX_TERMS:
        raise QueryError(f"a query may hold at most {MAX_TERMS} quoted phrases and -exclusions "
                         f"(limit MAX_TERMS; this one holds {parsed.written_terms})")
    longest = max((len(term) for term in (*parsed.phrases, *parsed.excluded)), default=0)
    if longest > MAX_TERM_CHARS:
        raise QueryError(f"a quoted phrase or -exclusion may be at most {MAX_TERM_CHARS} characters "
                         f"(limit MAX_TERM_CHARS; one holds {longest})")
