"""Splitting one gate run across CI jobs, and merging their JSON reports into one verdict.

`--shard K/N` (`gate(..., shard="K/N")`) keeps, of every profile's grid (sorted cheapest first), the shapes at
positions K-1, K-1+N, K-1+2N, ...: round robin over the cost order, so each job gets a like share of cheap and
costly shapes. Every job draws the same hypothesis cases as the unsharded run (a drawn case is a light
recipe) and runs only those of its own shapes; the shapes hypothesis missed then run on their own as
before. So the N jobs together run exactly the cases of the unsharded run, each once, and `merge_reports`
(`led-parity gate-merge A.json B.json ...`) gives its verdict: the first failure in shard order, else
`incomplete` if a shard was cut short or missing, else `pass`.
"""

from __future__ import annotations

from dataclasses import dataclass

# Fields every shard of one run must agree on (else the reports are of different runs: a usage error).
SAME_RUN = ("kernel", "seed", "profile", "dtype", "examples", "backward", "blocks", "support", "atol", "deterministic")


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based K of K/N
    count: int  # N

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, position: int) -> bool:
        """Whether the shape at `position` of a profile's cost-sorted grid is this shard's."""
        return position % self.count == self.index - 1


def parse_shard(value) -> Shard | None:
    """None, a Shard, or "K/N" with 1 <= K <= N -> Shard (ValueError naming the value otherwise)."""
    if value is None or isinstance(value, Shard):
        return value
    text = str(value)
    index, sep, count = text.partition("/")
    try:
        k, n = int(index), int(count)
    except ValueError:
        raise ValueError(f"shard must look like K/N (e.g. 2/4), got {text!r}") from None
    if not sep or n < 1 or not 1 <= k <= n:
        raise ValueError(f"shard K/N needs 1 <= K <= N, got {text!r}")
    return Shard(k, n)


def owned_labels(labels: list[str], shard: Shard | None) -> list[str]:
    """The labels (a profile's grid, cheapest first) this shard runs; all of them without a shard."""
    if shard is None:
        return list(labels)
    return [label for i, label in enumerate(labels) if shard.owns(i)]


# ------------------------------------------------------------------------------------------ merging
def merge_reports(reports: list[dict]) -> dict:
    """One report from the JSON reports of the shards of one run (ValueError when they are not one run's:
    different settings, a shard given twice, a report without a shard mixed with sharded ones)."""
    if not reports:
        raise ValueError("gate-merge needs at least one JSON report")
    first = reports[0]
    for name in SAME_RUN:
        values = {repr(r.get(name)) for r in reports}
        if len(values) > 1:
            raise ValueError(f"the reports are not of one run: {name} differs ({', '.join(sorted(values))})")
    shards = [r.get("shard") for r in reports]
    counts = {parse_shard(s).count if s else None for s in shards}
    if len(counts) > 1:
        raise ValueError(f"the reports split the run differently: shards {shards}")
    count = counts.pop()
    if count is not None and len(set(shards)) != len(shards):
        raise ValueError(f"a shard is given twice: {shards}")
    missing = [] if count is None else [f"{k}/{count}" for k in range(1, count + 1) if f"{k}/{count}" not in shards]
    ordered = sorted(reports, key=lambda r: parse_shard(r["shard"]).index if r.get("shard") else 0)

    merged = {key: first.get(key) for key in ("schema_version", "kernel", "seed", "profile", "blocks", "dtype",
                                              "examples", "backward", "atol", "max_seconds", "allow_incomplete",
                                              "forward_only", "support", "deterministic")}
    merged["shards"] = [r.get("shard") for r in ordered]
    merged["shards_missing"] = missing
    merged["planned"] = [label for r in ordered for label in r.get("planned", [])]
    merged["planned_shapes"] = sum(int(r.get("planned_shapes", 0)) for r in ordered)
    merged["shapes_not_run"] = [label for r in ordered for label in r.get("shapes_not_run", [])]
    merged["cases_run"] = sum(int(r.get("cases_run", 0)) for r in ordered)
    merged["cases_per_shape"] = {}
    for r in ordered:
        for label, n in r.get("cases_per_shape", {}).items():
            merged["cases_per_shape"][label] = merged["cases_per_shape"].get(label, 0) + n
    merged["shapes_run"] = len(merged["cases_per_shape"])
    merged["cases"] = [c for r in ordered for c in r.get("cases", [])]
    merged["excluded"] = first.get("excluded", {})
    merged["worst_error"] = _worst(ordered)
    merged["notes"] = list(dict.fromkeys(n for r in ordered for n in r.get("notes", [])))
    merged["seconds"] = round(sum(float(r.get("seconds", 0.0)) for r in ordered), 3)
    merged["seconds_per_shard"] = {r.get("shard") or "all": r.get("seconds") for r in ordered}
    merged["versions"] = first.get("versions")
    merged["device"] = first.get("device")
    if any(r.get("versions") != first.get("versions") or r.get("device") != first.get("device") for r in ordered):
        merged["notes"].append("the shards ran on different devices or library versions: "
                               + "; ".join(f"{r.get('shard')}: {r.get('device')} {r.get('versions')}" for r in ordered))

    failing = next((r for r in ordered if r.get("verdict") not in ("pass", "incomplete")), None)
    if failing is not None:
        merged["verdict"], merged["failure"] = failing["verdict"], failing.get("failure")
        merged["failed_shard"], merged["replay"] = failing.get("shard"), failing.get("replay")
        merged["report"] = failing.get("report")
    elif missing or any(r.get("verdict") == "incomplete" for r in ordered):
        merged["verdict"], merged["failure"], merged["replay"] = "incomplete", None, None
        merged["report"] = None
    else:
        merged["verdict"], merged["failure"], merged["replay"], merged["report"] = "pass", None, None, None
    merged["passed"] = merged["verdict"] == "pass"
    merged["complete"] = None if failing else not missing and all(r.get("complete") for r in ordered)
    return merged


def _worst(reports: list[dict]) -> dict:
    worst: dict = {}
    for r in reports:
        for output, w in (r.get("worst_error") or {}).items():
            old = worst.get(output)
            if old is None or _ratio(w) > _ratio(old):
                worst[output] = w
    return worst


def _ratio(w: dict) -> float:
    error, budget = w.get("error"), w.get("budget")
    if error is None:
        return float("inf")
    return float(error) / max(float(budget or 0.0), 1e-300)


def merged_message(merged: dict) -> str:
    """The merged verdict line first (as the gate's), then what each shard did."""
    where = f"profile {merged['profile']}, {merged['dtype']}, seed {merged['seed']}"
    shards = ", ".join(s or "unsharded" for s in merged["shards"])
    verdict = merged["verdict"]
    if verdict == "pass":
        lines = [f"pass: {merged['kernel']} meets the contract on {merged['cases_run']} cases in "
                 f"{merged['shapes_run']} shapes (merged shards {shards}; {where})"]
    elif verdict == "incomplete":
        lines = [f"incomplete: {merged['kernel']} ran {merged['shapes_run']} of {merged['planned_shapes']} planned "
                 f"shapes across shards {shards} ({where})"]
        if merged["shards_missing"]:
            lines.append(f"  shards missing: {', '.join(merged['shards_missing'])}")
    else:
        failure = merged.get("failure") or {}
        lines = [f"{verdict}: {merged['kernel']} fails in shard {merged.get('failed_shard') or 'unsharded'} on "
                 f"{failure.get('output', '?')} ({where})", f"  where: {failure.get('detail', '')}"]
        if merged.get("replay"):
            lines.append(f"  replay: {merged['replay']}")
        if failure.get("replay_case"):
            lines.append(f"  reproducer folder: {failure['replay_case']}")
    lines += [f"  note: {note}" for note in merged["notes"]]
    return "\n".join(lines)
