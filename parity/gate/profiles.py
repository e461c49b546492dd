"""Shape profiles of the kernel gate: a grid of shapes, and hypothesis cases inside each (docs/contract.md).

    toy        windows 2..8, seq 1..3 windows (block counts of both parities), head_dim 2..4, batch <= 2,
               1..16 heads: every rule of the contract on cases small enough to shrink to a few tokens
    boundary   for each tile size B of `blocks` (default 16, 32, 64, 128): windows 3B/2 (half not a multiple
               of B) and 2B, 1..3 blocks of queries, head_dim 16/40/64/128; valid lengths, padding holes and
               global positions at k*B - 1, k*B, k*B + 1; global counts 0, 1, 16 +- 1, 32 +- 1, 64 +- 1;
               batch up to 4 with a different count per row; 1..16 heads on the shortest seq of each window
    realistic  LED-base/large: windows 64, 256, 512, 1024, head_dim 64 (12 or 16 heads) and 128 (8 heads),
               seq 1024 and 4096 (>= 3 query blocks of 64); batch up to 2
    long       LED's full length, one head, head_dim 64, batch 1: 16,384 tokens with window 1024, and 8,192 with
               windows 512 and 1024 (always right padding and global tokens); extra shapes do not join it

Every shape of the grid (window x block count x head_dim) is visited; hypothesis varies the token layout
and the values inside it: every padding layout on toy and boundary (none, right, left, runs inside, a batch
row with no valid token), nonzero means, outliers, peaked softmaxes, strided views. `max_heads` caps only
the realistic heads: toy and boundary keep 1..16 heads on short sequences, so a cap never hides a bug in
the later heads. `ExtraShapes` adds values to every profile's axes (seqs, heads, windows, head dims).
Shapes outside the kernel's `Support` are left out (and listed), never drawn and thrown away. Cases are
drawn as light `CaseRecipe`s (seeds and layout); their arrays are built only when the gate runs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

from parity.gate.activations import VALUE_STYLES, activation_like, heavy_tails
from parity.gate.poison import GateCase, layout_of
from parity.gate.support import Support
from parity.harness.strategies import describe_row, empty_rows, token_kinds

PROFILES = ("toy", "boundary", "realistic", "long")
PROFILE_CHOICES = (*PROFILES, "all")
DEFAULT_BLOCKS = (16, 32, 64, 128)
GLOBAL_COUNTS = (0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65)
TOY_WINDOWS = (2, 4, 6, 8)
TOY_CHUNKS = (1, 2, 3)  # seq / window: odd and even block counts for every window
TOY_HEAD_DIMS = (2, 3, 4)
BOUNDARY_HEAD_DIMS = (16, 40, 64, 128)
REALISTIC_WINDOWS = (64, 256, 512, 1024)
REALISTIC_LENGTHS = (1024, 4096)
REALISTIC_HEAD_DIMS = (64, 128)
FEW_HEADS = 2
MANY_HEADS = 16  # LED-large's heads, drawn on toy shapes and boundary's shortest seqs (cheap there)
# Share of `examples` each profile spends (cases cost ~1e3x more in `realistic`); every shape gets >= 1.
EXAMPLE_SHARE = {"toy": 1.0, "boundary": 1.0, "realistic": 0.2, "long": 0.02}
# Shapes hypothesis did not draw then run on their own with this many cases (their simplest layout: full
# rows without globals, which already exercises the shape's tile geometry).
MIN_PER_SHAPE = {"toy": 1, "boundary": 1, "realistic": 1, "long": 1}
# LED's full length, one head: (window, seq). Seqs up to LONG_PADDED always draw right padding and globals.
LONG_SHAPES = ((1024, 16384), (512, 8192), (1024, 8192))
LONG_HEAD_DIM = 64
LONG_PADDED = 8192


@dataclass(frozen=True)
class Shape:
    """One grid point: window, seq, head_dim, heads (the most; `fixed_heads` = exactly), batch up to max_batch;
    `block` = the tile size whose edges the layout aims at (None: random layout); `extra_heads` = head counts
    drawn besides 1..min(heads, MANY_HEADS)."""

    profile: str
    window: int
    seq: int
    head_dim: int
    heads: int
    max_batch: int
    block: int | None = None
    fixed_heads: bool = False
    extra_heads: tuple[int, ...] = ()

    @property
    def label(self) -> str:
        block = f" block={self.block}" if self.block else ""
        heads = f" heads={self.heads}" if self.fixed_heads else ""
        return f"{self.profile} window={self.window} seq={self.seq} head_dim={self.head_dim}{heads}{block}"

    @property
    def cost(self) -> int:
        """The work of the shape's simplest case (one row, its fewest heads): shapes run cheapest first."""
        return (self.heads if self.fixed_heads else 1) * self.seq * (self.window + 1) * self.head_dim


@dataclass
class Grid:
    """The shapes a profile runs within a support, and what the support left out (reason -> count)."""

    profile: str
    shapes: list[Shape] = field(default_factory=list)
    excluded: dict[str, int] = field(default_factory=dict)

    def excluded_text(self) -> str:
        return ", ".join(f"{reason} ({n} shapes)" for reason, n in sorted(self.excluded.items()))


# ------------------------------------------------------------------------------------------ extra shapes
def _int_values(name: str, values, minimum: int, even: bool = False) -> tuple[int, ...]:
    """None, an int, "8192,16384" or an iterable of ints -> a sorted tuple (TypeError/ValueError naming it)."""
    if values is None:
        return ()
    if isinstance(values, str):
        try:
            values = [int(v) for v in values.split(",") if v.strip()]
        except ValueError:
            raise TypeError(f"{name} takes comma-separated ints, got {values!r}") from None
    elif isinstance(values, (int, np.integer)):
        values = [values]
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} entries must be ints, got {v!r}")
        if v < minimum or (even and v % 2):
            limit = f"even ints >= {minimum}" if even else f"ints >= {minimum}"
            raise ValueError(f"{name} entries must be {limit}, got {int(v)}")
        out.append(int(v))
    return tuple(sorted(set(out)))


@dataclass(frozen=True)
class ExtraShapes:
    """Values added to every profile's axes (never replacing any): `seqs` (each rounded up to a multiple of the
    window), `heads`, `windows` (even), `head_dims`. The kernel's Support still leaves out what it excludes.

    toy and boundary: each extra window gets the profile's seqs, each extra seq joins every window, head dims
    join the head_dim axis, head counts are drawn where 1..16 heads are; realistic: every window x seq x
    head_dim, with LED's heads for the head_dim (1024 // head_dim beyond 64 and 128) and each extra count."""

    seqs: tuple[int, ...] = ()
    heads: tuple[int, ...] = ()
    windows: tuple[int, ...] = ()
    head_dims: tuple[int, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "seqs", _int_values("seq", self.seqs, 1))
        object.__setattr__(self, "heads", _int_values("heads", self.heads, 1))
        object.__setattr__(self, "windows", _int_values("windows", self.windows, 2, even=True))
        object.__setattr__(self, "head_dims", _int_values("head_dims", self.head_dims, 1))

    def __bool__(self) -> bool:
        return bool(self.seqs or self.heads or self.windows or self.head_dims)

    def flags(self) -> str:
        """The CLI flags that add these shapes again (for a replay command)."""
        names = (("--seq", self.seqs), ("--heads", self.heads), ("--windows", self.windows),
                 ("--add-head-dims", self.head_dims))
        return " ".join(f"{flag} {','.join(map(str, values))}" for flag, values in names if values)


def parse_extra_shapes(seq=None, heads=None, windows=None, head_dims=None) -> ExtraShapes:
    """ExtraShapes from CLI or API values: each None, an int, "a,b" or ints (TypeError/ValueError naming it)."""
    return ExtraShapes(seqs=seq, heads=heads, windows=windows, head_dims=head_dims)


# ------------------------------------------------------------------------------------------ the grid
def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _union(base: tuple[int, ...], extra: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(sorted(set(base) | set(extra)))


def _led_heads(window: int, head_dim: int) -> int:
    """LED's encoder heads for a head_dim: 8 x 128, 12 x 64 (base, windows <= 256) or 16 x 64 (large)."""
    if head_dim == 128:
        return 8
    if head_dim == 64:
        return 12 if window <= 256 else 16
    return max(1, 1024 // head_dim)  # LED-large's d_model split into heads of this size


def _toy(extra: ExtraShapes) -> list[Shape]:
    heads = max((MANY_HEADS, *extra.heads))
    shapes = []
    for window in _union(TOY_WINDOWS, extra.windows):
        seqs = dict.fromkeys([window * chunks for chunks in TOY_CHUNKS] + [_round_up(s, window) for s in extra.seqs])
        for seq in seqs:
            for head_dim in _union(TOY_HEAD_DIMS, extra.head_dims):
                shapes.append(Shape("toy", window, seq, head_dim, heads, 2, extra_heads=extra.heads))
    return shapes


def _boundary(blocks: tuple[int, ...], extra: ExtraShapes) -> list[Shape]:
    many = max((MANY_HEADS, *extra.heads))
    shapes = []
    for block in blocks:
        for window in _union((_round_up(3 * block // 2, 2), 2 * block), extra.windows):
            seqs, seq = {}, 0
            for count in (1, 2, 3):  # query blocks past k*B + 1; a longer seq than the last count's
                seq = max(_round_up(count * block + 2, window), seq + window)
                seqs.setdefault(seq, count == 1)  # the shortest seq of the window draws up to 16 heads
            for s in extra.seqs:
                seqs.setdefault(_round_up(s, window), False)
            for seq, short in seqs.items():
                heads, extra_heads = (many, extra.heads) if short else (FEW_HEADS, ())
                for head_dim in _union(BOUNDARY_HEAD_DIMS, extra.head_dims):
                    shapes.append(Shape("boundary", window, seq, head_dim, heads, 4, block, extra_heads=extra_heads))
    return shapes


def _realistic(max_heads: int | None, extra: ExtraShapes) -> list[Shape]:
    shapes = []
    for window in _union(REALISTIC_WINDOWS, extra.windows):
        for length in _union(REALISTIC_LENGTHS, extra.seqs):
            for head_dim in _union(REALISTIC_HEAD_DIMS, extra.head_dims):
                for heads in _union((_led_heads(window, head_dim),), extra.heads):
                    heads = heads if max_heads is None else min(heads, max_heads)
                    shapes.append(Shape("realistic", window, _round_up(length, window), head_dim, heads, 2, 64,
                                        fixed_heads=True))
    return shapes


def _long() -> list[Shape]:
    """LED's 16,384 tokens (window 1024) and 8,192 (windows 512 and 1024), one head, batch 1: fixed shapes, where
    length bugs live (a launch grid, an int16 index, a buffer sized for 4,096 tokens)."""
    return [Shape("long", window, seq, LONG_HEAD_DIM, 1, 1, 64, fixed_heads=True) for window, seq in LONG_SHAPES]


def _candidates(profile: str, blocks: tuple[int, ...], max_heads: int | None, extra: ExtraShapes) -> list[Shape]:
    if profile == "toy":
        shapes = _toy(extra)
    elif profile == "boundary":
        shapes = _boundary(blocks, extra)
    elif profile == "realistic":
        shapes = _realistic(max_heads, extra)
    elif profile == "long":
        shapes = _long()
    else:
        raise ValueError(f"profile must be one of {', '.join(PROFILE_CHOICES)}; got {profile!r}")
    return list(dict.fromkeys(shapes))  # an extra value equal to a profile's own adds nothing


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


def grid(profile: str, support: Support | None = None, blocks=DEFAULT_BLOCKS, max_heads: int | None = None,
         extra: ExtraShapes | None = None) -> Grid:
    """The shapes of `profile` inside `support`, cheapest first (the first failing shape is the smallest).

    `max_heads` caps the heads of the realistic shapes; `extra` adds values to the profile's axes."""
    support = support or Support()
    blocks = check_blocks(blocks)
    if max_heads is not None and (isinstance(max_heads, bool) or not isinstance(max_heads, int) or max_heads < 1):
        raise ValueError(f"max_heads must be an int >= 1, got {max_heads!r}")
    if extra is not None and not isinstance(extra, ExtraShapes):
        raise TypeError(f"extra must be a parity.gate.profiles.ExtraShapes, got {type(extra).__name__}")
    result = Grid(profile)
    for shape in _candidates(profile, blocks, max_heads, extra or ExtraShapes()):
        reason = support.why_not(shape.window, shape.seq, shape.head_dim)
        if reason is None:
            result.shapes.append(shape)
        else:
            result.excluded[reason] = result.excluded.get(reason, 0) + 1
    result.shapes.sort(key=lambda s: (s.cost, s.window, s.seq, s.head_dim, s.heads))
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
    poisoned: bool = False  # inputs handed as views inside NaN-filled buffers (parity.gate.poison)
    values: str = "normal"  # a VALUE_STYLES entry: how activation-like the values are
    transposed: bool = False  # inputs handed with head_dim not unit-stride (parity.gate.poison; not if poisoned)

    def key(self) -> tuple:
        return (self.shape, self.batch, self.heads, self.token_kind.tobytes(), self.seed, self.scale, self.mean,
                self.outliers, self.strided, self.poisoned, self.values, self.transposed)

    def materialize(self) -> GateCase:
        """The case (float64 arrays (batch, heads, seq, head_dim), queries pre-scaled)."""
        shape = (self.batch, self.heads, self.shape.seq, self.shape.head_dim)
        if self.values == "heavy_tails":  # drawn anew from the style's own stream: no normal draws to replace
            arrays = heavy_tails(shape, self.seed, self.scale, self.mean)
        else:
            arrays = activation_like(self._normal_arrays(shape), self.values, self.token_kind, self.seed,
                                     self.scale, self.mean, in_place=True)
        for i in (0, 3):
            arrays[i] *= self.shape.head_dim ** -0.5
        return GateCase(*arrays, token_kind=self.token_kind, window=self.shape.window, seed=self.seed,
                        strided=self.strided, label=self.shape.label, poisoned=self.poisoned,
                        transposed=self.transposed)

    def _normal_arrays(self, shape: tuple) -> list:
        """The six arrays scale * N(0, 1) + mean (and the outliers), computed in place: each array is drawn once
        and never copied, which matters at 2 x 16 x 4,096 x 64."""
        rng = np.random.default_rng(self.seed)
        uniform = np.empty(shape) if self.outliers else None
        arrays = []
        for _ in range(6):
            a = rng.standard_normal(shape)
            a *= self.scale
            a += self.mean
            if self.outliers:  # a few large entries, as trained projections have
                np.multiply(a, 8.0, out=a, where=rng.random(out=uniform) < 2e-3)
            arrays.append(a)
        return arrays

    def describe(self) -> str:

        values = f"scale={self.scale} mean={self.mean}" + (" outliers" if self.outliers else "")
        if self.values != "normal":
            values += f" values={self.values}"
        rows = "; ".join(describe_row(r) for r in self.token_kind) if self.shape.seq > 64 else \
            str(["".join(".lg"[k] for k in r) for r in self.token_kind])
        layout = (" strided" if self.strided else "") + (" poisoned" if self.poisoned else "") + \
            (" transposed" if layout_of(self) == "transposed" else "")
        return (f"[{self.shape.label}] batch={self.batch} heads={self.heads} value_seed={self.seed} {values}"
                f"{layout} rows: {rows}")

    def __repr__(self) -> str:
        return f"CaseRecipe({self.describe()})"


def _edges(block: int, length: int) -> list[int]:
    """Positions k*block - 1, k*block, k*block + 1 inside 0..length-1."""
    out = []
    for k in range(1, length // block + 2):
        out += [k * block - 1, k * block, k * block + 1]
    return sorted({p for p in out if 0 <= p < length})


def _run_lengths(shape: Shape) -> list[int]:
    """How long a padding hole is: one token, two, or just past the one-sided reach (a query beside it sees
    no neighbour on that side)."""
    return sorted({1, 2, shape.window // 2 + 1})


@st.composite
def _row(draw, shape: Shape, support: Support) -> np.ndarray:
    """One row's token kinds: a valid span (right and, outside realistic, left padding), holes, globals."""
    seq, block = shape.seq, shape.block
    every_padding = shape.profile not in ("realistic", "long")
    if shape.profile == "boundary":
        edge_lengths = [p for p in _edges(block, seq + 1) if p >= 1]
        length = draw(st.one_of(st.just(seq), st.sampled_from(edge_lengths), st.integers(1, seq)))
    elif shape.profile == "realistic" or (shape.profile == "long" and seq > LONG_PADDED):
        length = draw(st.one_of(st.just(seq), st.integers(max(1, seq // 2), seq)))
    elif shape.profile == "long":  # always right padding (and globals, below)
        length = draw(st.integers(seq // 2, seq - 1))
    else:
        length = draw(st.one_of(st.just(seq), st.integers(1, seq)))
    start = 0
    if every_padding and length < seq:  # left padding, ending on a tile edge or anywhere
        starts = [p for p in (_edges(block, seq) if block else []) if p <= seq - length] or [0]
        start = draw(st.one_of(st.just(0), st.sampled_from(starts), st.integers(0, seq - length)))
    end = start + length
    kinds = np.zeros(seq, np.int64)
    kinds[start:end] = 1
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    if length > 2:
        spots = [p for p in (_edges(block, end) if block else []) if start < p < end] or list(range(start + 1, end))
        holes = draw(st.lists(st.sampled_from(spots), max_size=2, unique=True))
        run = draw(st.sampled_from(_run_lengths(shape))) if every_padding and holes else 1
        for hole in holes:  # a run stops before the span's end; the span's first token stays valid
            kinds[hole:min(end, hole + run)] = 0
    valid = np.flatnonzero(kinds)
    limit = support.globals_limit(len(valid))
    counts = [c for c in GLOBAL_COUNTS if c <= limit] + ([limit] if limit not in GLOBAL_COUNTS else [])
    if shape.profile == "long" and seq <= LONG_PADDED:
        counts = [c for c in counts if c > 0] or counts
    count = draw(st.sampled_from(counts))
    if count:
        edges = [p for p in (_edges(block, seq) if block else []) if kinds[p]]
        take = min(count, draw(st.integers(0, len(edges)))) if edges else 0
        chosen = list(rng.choice(edges, size=take, replace=False)) if take else []
        rest = np.setdiff1d(valid, chosen)
        chosen += list(rng.choice(rest, size=count - take, replace=False))
        kinds[np.asarray(chosen, np.int64)] = 2
    return kinds


def _heads(shape: Shape):
    """The shape's head counts: exactly `heads`, or 1..2 half the time, else 3..16, 16 itself or an extra
    count (more heads cost more; half the cases suffice to reach the later heads)."""
    if shape.fixed_heads:
        return st.just(shape.heads)
    few = st.integers(1, min(FEW_HEADS, shape.heads))
    many = []
    if shape.heads > FEW_HEADS:
        most = min(shape.heads, MANY_HEADS)
        many += [st.integers(FEW_HEADS + 1, most), st.just(most)]
    if shape.extra_heads:
        many.append(st.sampled_from(shape.extra_heads))
    return st.one_of(few, st.one_of(many)) if many else few


@st.composite
def shape_cases(draw, shape: Shape, support: Support | None = None) -> CaseRecipe:
    """A CaseRecipe of `shape`: batch, heads, token layout per row, value seed/scale/mean/outliers, layout.

    Outside realistic, rows of a batch of >= 2 may hold no valid token at all (never every row)."""
    support = support or Support()
    batch = draw(st.integers(1, shape.max_batch))
    heads = draw(_heads(shape))
    if shape.profile == "toy" and support.max_globals is None:
        kinds = draw(token_kinds(batch, shape.seq, every_padding=True))
    else:
        kinds = np.stack([draw(_row(shape, support)) for _ in range(batch)])
        if shape.profile not in ("realistic", "long"):
            kinds[sorted(draw(empty_rows(batch)))] = 0
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.sampled_from([1.0, 3.0, 0.3]))  # 3.0 makes softmaxes peaked
    mean = draw(st.sampled_from([0.0, 0.5, -1.0]))
    outliers = draw(st.booleans())
    strided = draw(st.booleans())
    poisoned = draw(st.booleans())  # drawn after the older fields, so their draws stay what they were
    values = draw(st.one_of(st.just("normal"), st.sampled_from(VALUE_STYLES[1:])))
    transposed = draw(st.integers(0, 3)) == 0  # drawn last: the fields above keep their draws
    return CaseRecipe(shape, batch, heads, kinds, seed, scale, mean, outliers, strided, poisoned, values,
                      transposed)
