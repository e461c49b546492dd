"""Shape profiles of the kernel gate: a grid of shapes, and hypothesis cases inside each (docs/contract.md).

    toy        windows 2..8, seq <= 3 windows, head_dim 2..4, batch and heads <= 2: every rule of the
               contract on cases small enough to shrink to a few tokens
    boundary   for each tile size B of `blocks` (default 16, 32, 64, 128): windows 3B/2 (half not a multiple
               of B) and 2B, 1..3 blocks of queries, head_dim 16/40/64/128; valid lengths, padding holes and
               global positions at k*B - 1, k*B, k*B + 1; global counts 0, 1, 16 +- 1, 32 +- 1, 64 +- 1;
               batch up to 4 with a different count per row
    realistic  LED-base/large: windows 64, 256, 512, 1024, head_dim 64 (12 or 16 heads) and 128 (8 heads),
               seq 1024 and 4096 (>= 3 query blocks of 64); batch up to 2

Every shape of the grid (window x block count x head_dim) is visited; hypothesis varies the token layout
and the values inside it: nonzero means, outliers, peaked softmaxes, strided views. Shapes outside the
kernel's `Support` are left out (and listed), never drawn and thrown away. Cases are drawn as light
`CaseRecipe`s (seeds and layout); their arrays are built only when the gate runs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

from parity.gate.support import Support
from parity.harness.strategies import AttentionCase, describe_row, token_kinds

PROFILES = ("toy", "boundary", "realistic")
PROFILE_CHOICES = (*PROFILES, "all")
DEFAULT_BLOCKS = (16, 32, 64, 128)
GLOBAL_COUNTS = (0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65)
# Share of `examples` each profile spends (cases cost ~1e3x more in `realistic`); every shape gets >= 1.
EXAMPLE_SHARE = {"toy": 1.0, "boundary": 1.0, "realistic": 0.2}
# Shapes hypothesis did not draw then run on their own with this many cases (their simplest layout: full
# rows without globals, which already exercises the shape's tile geometry).
MIN_PER_SHAPE = {"toy": 1, "boundary": 1, "realistic": 1}


@dataclass(frozen=True)
class Shape:
    """One grid point: window, seq, head_dim, heads (the most; `fixed_heads` = exactly), batch up to max_batch;
    `block` = the tile size whose edges the layout aims at (None: random layout)."""

    profile: str
    window: int
    seq: int
    head_dim: int
    heads: int
    max_batch: int
    block: int | None = None
    fixed_heads: bool = False

    @property
    def label(self) -> str:
        block = f" block={self.block}" if self.block else ""
        return f"{self.profile} window={self.window} seq={self.seq} head_dim={self.head_dim}{block}"

    @property
    def cost(self) -> int:
        return self.max_batch * self.heads * self.seq * (self.window + 1) * self.head_dim


@dataclass
class Grid:
    """The shapes a profile runs within a support, and what the support left out (reason -> count)."""

    profile: str
    shapes: list[Shape] = field(default_factory=list)
    excluded: dict[str, int] = field(default_factory=dict)

    def excluded_text(self) -> str:
        return ", ".join(f"{reason} ({n} shapes)" for reason, n in sorted(self.excluded.items()))


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _candidates(profile: str, blocks: tuple[int, ...], max_heads: int | None) -> list[Shape]:
    def heads_of(n: int) -> int:
        return n if max_heads is None else max(1, min(n, max_heads))

    shapes = []
    if profile == "toy":
        for window in (2, 4, 6, 8):
            for chunks in (1, 2, 3):
                for head_dim in (2, 3, 4):
                    shapes.append(Shape("toy", window, window * chunks, head_dim, heads_of(2), 2))
    elif profile == "boundary":
        for block in blocks:
            for window in sorted({_round_up(3 * block // 2, 2), 2 * block}):
                seq = 0
                for count in (1, 2, 3):  # query blocks past k*B + 1; a longer seq than the last count's
                    seq = max(_round_up(count * block + 2, window), seq + window)
                    for head_dim in (16, 40, 64, 128):
                        shapes.append(Shape("boundary", window, seq, head_dim, heads_of(2), 4, block))
    elif profile == "realistic":
        for window in (64, 256, 512, 1024):
            for length in (1024, 4096):
                for head_dim in (64, 128):
                    heads = 8 if head_dim == 128 else (12 if window <= 256 else 16)
                    shapes.append(Shape("realistic", window, _round_up(length, window), head_dim, heads_of(heads),
                                        2, 64, fixed_heads=True))
    else:
        raise ValueError(f"profile must be one of {', '.join(PROFILE_CHOICES)}; got {profile!r}")
    return shapes


def profile_names(profile: str) -> tuple[str, ...]:
    """'all' -> every profile; a name -> itself (ValueError naming the choices otherwise)."""
    if profile == "all":
        return PROFILES
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILE_CHOICES)}; got {profile!r}")
    return (profile,)


def check_blocks(blocks) -> tuple[int, ...]:
    blocks = (blocks,) if isinstance(blocks, int) else tuple(blocks)
    if not blocks:
        raise ValueError("blocks must name at least one tile size")
    for b in blocks:
        if isinstance(b, bool) or not isinstance(b, int) or b < 2 or b % 2:
            raise ValueError(f"blocks must be even ints >= 2, got {b!r}")
    return blocks


def grid(profile: str, support: Support | None = None, blocks=DEFAULT_BLOCKS, max_heads: int | None = None) -> Grid:
    """The shapes of `profile` inside `support`, cheapest first (the first failing shape is the smallest)."""
    support = support or Support()
    blocks = check_blocks(blocks)
    if max_heads is not None and (isinstance(max_heads, bool) or not isinstance(max_heads, int) or max_heads < 1):
        raise ValueError(f"max_heads must be an int >= 1, got {max_heads!r}")
    result = Grid(profile)
    for shape in _candidates(profile, blocks, max_heads):
        reason = support.why_not(shape.window, shape.seq, shape.head_dim)
        if reason is None:
            result.shapes.append(shape)
        else:
            result.excluded[reason] = result.excluded.get(reason, 0) + 1
    result.shapes.sort(key=lambda s: (s.cost, s.window, s.seq, s.head_dim))
    return result


def profile_examples(profile: str, examples: int) -> int:
    """Cases hypothesis draws across the shapes of `profile` (its share of `examples`, at least 1)."""
    return max(1, round(examples * EXAMPLE_SHARE[profile]))


# ------------------------------------------------------------------------------------------ cases
@dataclass(frozen=True)
class CaseRecipe:
    """A drawn case before its arrays exist: shape, token layout, and how to draw the values."""

    shape: Shape
    batch: int
    heads: int
    token_kind: np.ndarray = field(compare=False)
    seed: int = 0
    scale: float = 1.0
    mean: float = 0.0
    outliers: bool = False
    strided: bool = False

    def key(self) -> tuple:
        return (self.shape, self.batch, self.heads, self.token_kind.tobytes(), self.seed, self.scale, self.mean,
                self.outliers, self.strided)

    def materialize(self) -> AttentionCase:
        """The AttentionCase (float64 arrays (batch, heads, seq, head_dim), queries pre-scaled)."""
        rng = np.random.default_rng(self.seed)
        shape = (self.batch, self.heads, self.shape.seq, self.shape.head_dim)
        arrays = []
        for i in range(6):
            a = self.scale * rng.standard_normal(shape) + self.mean
            if self.outliers:  # a few large entries, as trained projections have
                spots = rng.random(shape) < 2e-3
                a[spots] *= 8.0
            if i in (0, 3):
                a *= self.shape.head_dim ** -0.5
            arrays.append(a)
        return AttentionCase(*arrays, token_kind=self.token_kind, window=self.shape.window, seed=self.seed,
                             strided=self.strided, label=self.shape.label)

    def describe(self) -> str:

        values = f"scale={self.scale} mean={self.mean}" + (" outliers" if self.outliers else "")
        rows = "; ".join(describe_row(r) for r in self.token_kind) if self.shape.seq > 64 else \
            str(["".join(".lg"[k] for k in r) for r in self.token_kind])
        return (f"[{self.shape.label}] batch={self.batch} heads={self.heads} value_seed={self.seed} {values}"
                f"{' strided' if self.strided else ''} rows: {rows}")

    def __repr__(self) -> str:
        return f"CaseRecipe({self.describe()})"


def _edges(block: int, length: int) -> list[int]:
    """Positions k*block - 1, k*block, k*block + 1 inside 0..length-1."""
    out = []
    for k in range(1, length // block + 2):
        out += [k * block - 1, k * block, k * block + 1]
    return sorted({p for p in out if 0 <= p < length})


@st.composite
def _row(draw, shape: Shape, support: Support) -> np.ndarray:
    seq, block = shape.seq, shape.block
    if shape.profile == "boundary":
        edge_lengths = [p for p in _edges(block, seq + 1) if p >= 1]
        length = draw(st.one_of(st.just(seq), st.sampled_from(edge_lengths), st.integers(1, seq)))
    elif shape.profile == "realistic":
        length = draw(st.one_of(st.just(seq), st.integers(max(1, seq // 2), seq)))
    else:
        length = draw(st.integers(1, seq))
    kinds = np.zeros(seq, np.int64)
    kinds[:length] = 1
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    if length > 2:
        spots = [p for p in (_edges(block, length) if block else []) if 0 < p < length] or list(range(1, length))
        holes = draw(st.lists(st.sampled_from(spots), max_size=2, unique=True))
        kinds[holes] = 0
    valid = np.flatnonzero(kinds)
    limit = support.globals_limit(len(valid))
    counts = [c for c in GLOBAL_COUNTS if c <= limit] + ([limit] if limit not in GLOBAL_COUNTS else [])
    count = draw(st.sampled_from(counts))
    if count:
        edges = [p for p in (_edges(block, seq) if block else []) if kinds[p]]
        take = min(count, draw(st.integers(0, len(edges)))) if edges else 0
        chosen = list(rng.choice(edges, size=take, replace=False)) if take else []
        rest = np.setdiff1d(valid, chosen)
        chosen += list(rng.choice(rest, size=count - take, replace=False))
        kinds[np.asarray(chosen, np.int64)] = 2
    return kinds


@st.composite
def shape_cases(draw, shape: Shape, support: Support | None = None) -> CaseRecipe:
    """A CaseRecipe of `shape`: batch, heads, token layout per row, value seed/scale/mean/outliers, layout."""
    support = support or Support()
    batch = draw(st.integers(1, shape.max_batch))
    heads = shape.heads if shape.fixed_heads else draw(st.integers(1, shape.heads))
    if shape.profile == "toy" and support.max_globals is None:
        kinds = draw(token_kinds(batch, shape.seq))
    else:
        kinds = np.stack([draw(_row(shape, support)) for _ in range(batch)])
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.sampled_from([1.0, 3.0, 0.3]))  # 3.0 makes softmaxes peaked
    mean = draw(st.sampled_from([0.0, 0.5, -1.0]))
    outliers = draw(st.booleans())
    strided = draw(st.booleans())
    return CaseRecipe(shape, batch, heads, kinds, seed, scale, mean, outliers, strided)
