"""Built-in synthetic reasoning tasks: offline, seeded, with a difficulty knob.

Each task turns a ``random.Random`` into one :class:`Record` whose answer follows from its steps.
``make_splits`` draws train/val/test with distinct questions, so the test set measures generalisation,
and the same seed always gives byte-identical files.

* ``running-sum`` — digits; steps are the running sums mod 10. Difficulty = number of digits (6).
  Easy with CoT, near chance without: the quickstart default.
* ``arith`` — GSM8K-Aug-like chains of 2..difficulty (8) operations, steps ``<<a*b=c>>``.
* ``graph-hop`` — ProsQA-like: a random successor map stated in the question; the answer is the node
  reached after ``difficulty`` (3) hops, the steps are the nodes visited.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ponder.data.records import Record, write_jsonl
from ponder.errors import PonderError


def running_sum(rng: random.Random, difficulty: int) -> Record:
    digits = [rng.randrange(10) for _ in range(difficulty)]
    sums, total = [], 0
    for d in digits:
        total = (total + d) % 10
        sums.append(str(total))
    return Record(" ".join(map(str, digits)), sums, sums[-1])


_OPS = {
    "+": ("Add {b}.", "Then add {b}.", "Increase it by {b}."),
    "-": ("Subtract {b}.", "Then take away {b}.", "Decrease it by {b}."),
    "*": ("Multiply by {b}.", "Then multiply it by {b}.", "Make it {b} times as large."),
    "/": ("Divide by {b}.", "Then split it into {b} equal parts and keep one.", "Divide it by {b}."),
}


def arith(rng: random.Random, difficulty: int) -> Record:
    n_steps = rng.randint(2, max(2, difficulty))
    value = rng.randint(2, 20)
    sentences, steps = [f"Start with {value}."], []
    for _ in range(n_steps):
        # Keep every intermediate a non-negative integer below 1000, like GSM8K's quantities.
        choices = ["+"] + (["-"] if value > 1 else []) + (["*"] if value * 2 < 1000 else [])
        divisors = [b for b in range(2, 10) if value % b == 0]
        choices += ["/"] if divisors else []
        op = rng.choice(choices)
        if op == "+":
            b = rng.randint(1, 50)
            new = value + b
        elif op == "-":
            b = rng.randint(1, min(value - 1, 50))
            new = value - b
        elif op == "*":
            b = rng.randint(2, min(9, 999 // value))
            new = value * b
        else:
            b = rng.choice(divisors)
            new = value // b
        sentences.append(rng.choice(_OPS[op]).format(b=b))
        steps.append(f"<<{value}{op}{b}={new}>>")
        value = new
    sentences.append("What is the result?")
    return Record(" ".join(sentences), steps, str(value))


_NODES = ("wug", "dax", "fep", "lorp", "zib", "tove", "blick", "mip", "gorp", "sned", "vab", "kiki",
          "bouba", "nerp", "quox", "yim")


def graph_hop(rng: random.Random, difficulty: int) -> Record:
    nodes = list(_NODES)
    rng.shuffle(nodes)
    succ = {a: rng.choice([b for b in nodes if b != a]) for a in nodes}
    start = rng.choice(nodes)
    path, node = [], start
    for _ in range(difficulty):
        node = succ[node]
        path.append(node)
    facts = " ".join(f"{a} leads to {succ[a]}." for a in nodes)
    return Record(f"{facts} Start at {start} and follow {difficulty} links. Where do you end?", path, path[-1])


@dataclass(frozen=True)
class Task:
    name: str
    make: Callable[[random.Random, int], Record]
    default_difficulty: int
    min_difficulty: int
    description: str


TASKS = {
    "running-sum": Task("running-sum", running_sum, 6, 1, "running sums of digits mod 10"),
    "arith": Task("arith", arith, 8, 2, "multi-step integer arithmetic, <<a*b=c>> steps"),
    "graph-hop": Task("graph-hop", graph_hop, 3, 1, "follow k links in a random successor map"),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise PonderError(f"unknown task '{name}' (choose from {', '.join(TASKS)})")
    return TASKS[name]


def make_splits(task: str, n_train: int = 5000, n_val: int = 200, n_test: int = 500, seed: int = 0,
                difficulty: int | None = None) -> dict[str, list[Record]]:
    """Draw disjoint train/val/test splits (no question appears in two splits)."""
    spec = get_task(task)
    difficulty = spec.default_difficulty if difficulty is None else difficulty
    if difficulty < spec.min_difficulty:
        raise PonderError(f"--difficulty for {task} must be at least {spec.min_difficulty}, got {difficulty}")
    for name, n in (("n-train", n_train), ("n-val", n_val), ("n-test", n_test)):
        if n < 0:
            raise PonderError(f"--{name} must be >= 0, got {n}")
    rng = random.Random(f"{task}:{seed}:{difficulty}")
    seen: set[str] = set()
    splits: dict[str, list[Record]] = {}
    # Test first, so the test set of a seed does not change when --n-train does.
    for split, n in (("test", n_test), ("val", n_val), ("train", n_train)):
        out, misses = [], 0
        while len(out) < n:
            rec = spec.make(rng, difficulty)
            if rec.question in seen:
                misses += 1
                if misses > 100 * n + 1000:
                    raise PonderError(f"{task} at difficulty {difficulty} has too few distinct questions for {n} {split} examples")
                continue
            seen.add(rec.question)
            out.append(rec)
        splits[split] = out
    return splits


def write_splits(splits: dict[str, list[Record]], out_dir) -> dict[str, Path]:
    out_dir = Path(out_dir)
    paths = {}
    for split in ("train", "val", "test"):
        paths[split] = out_dir / f"{split}.jsonl"
        write_jsonl(splits[split], paths[split])
    return paths
