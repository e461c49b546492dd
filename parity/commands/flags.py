"""The Command record and the flags several commands share (seed, examples, dtype, device, sides)."""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass

from parity.harness.tolerances import DTYPE_ORDER


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def add_common(parser, examples: int) -> None:
    parser.add_argument("--examples", type=int, default=examples, help="hypothesis cases to draw")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (drawn and printed if absent)")
    parser.add_argument("--dtype", default="float64", choices=DTYPE_ORDER)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))


def seed_of(args) -> int:
    """--seed, or a fresh one; printed either way so the run can be repeated."""
    seed = random.SystemRandom().randrange(2**32) if args.seed is None else args.seed
    print(f"seed: {seed}  (replay with --seed {seed})", file=sys.stderr)
    return seed


def sides_for(args):
    from parity.harness.implementations import check_sides

    return check_sides(args.backend, args.dtype, args.device, hf=getattr(args, "hf", False))


def int_list(flag: str):
    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} takes comma-separated ints, got {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError(f"{flag} takes comma-separated ints, got {text!r}")
        return values
    return parse


def positive(flag: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be a positive integer, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{flag} must be a positive integer, got {value}")
        return value
    return parse


def positions(text: str) -> list[int]:
    try:
        found = sorted({int(p) for p in text.split(",") if p.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--global takes comma-separated token positions, got {text!r}") from None
    if not found or found[0] < 0:
        raise argparse.ArgumentTypeError(f"--global positions must be integers >= 0, got {text!r}")
    return found
