"""Built-in synthetic reasoning tasks: offline, seeded, with a difficulty knob.

Each task turns a ``random.Random`` into one :class:`Record` whose answer follows from its steps.
``make_splits`` draws train/val/test with distinct questions, so the test set measures generalisation,
and the same seed always gives byte-identical files.

* ``running-sum`` — digits; steps are the running sums mod 10. Difficulty = number of digits (6).
  Easy with CoT, near chance without: the quickstart default.
* ``arith`` — GSM8K-Aug-like chains of 2..difficulty (8) operations, steps ``<<a*b=c>>``.
* ``graph-hop`` — ProsQA-like: a random successor map stated in the question; the answer is the node
  reached after ``difficulty`` (3) hops, the steps are the nodes visited.
* ``overthink`` — running sums of ``difficulty`` (4) digits traced the way a reasoning model over-thinks:
  solve, ``so the answer is 5.``, then up to ``max_rechecks`` (3) re-checks ``Wait, let me check: ...``, each
  further one with probability ``recheck_rate`` (0.6). On a share ``mistake_rate`` (0.2) of the questions (those
  that, read as a number, are below ``mistake_rate`` x 10^difficulty, so a model can learn which and greedy
  decoding errs on them too) the first attempt makes one wrong addition, states a wrong answer, then
  ``Wait, that is wrong. ...`` and a correction: the answer settles early, but the first stated answer is not
  always right. The ground on which exit policies (``inference/exits.py``) are measured. Options:
  ``make_splits("overthink", ..., recheck_rate=, mistake_rate=, max_rechecks=)``, or
  ``ponder data make overthink --recheck-rate R --mistake-rate M --max-rechecks K``.
* ``running-product`` — digits 1..6; steps are the running products mod 7. Difficulty = number of digits (6).
  running-sum's shape with another operation: the nonzero residues mod 7 form a group, so no product ever
  sticks at 0 (as digits 1..9 mod 10 would) and every step is a one-token residue 1..6.
* ``carry-add`` — addition of two ``difficulty`` (4) digit numbers written as column steps from the ones
  column, each ``a+b+carry=sum`` (``7+5+0=12``: write 2, carry 1); the answer is the written digits read
  back, with the last carry in front when it is 1.
* ``permutation`` — a ball under one of six cups and ``difficulty`` (6) swaps of two cups; the steps are
  the ball's cup after each swap (one token each), the answer the last one.
"""

from __future__ import annotations

import inspect
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


def running_product(rng: random.Random, difficulty: int) -> Record:
    digits = [rng.randint(1, 6) for _ in range(difficulty)]
    products, total = [], 1
    for d in digits:
        total = total * d % 7
        products.append(str(total))
    return Record(" ".join(map(str, digits)), products, products[-1])


def carry_add(rng: random.Random, difficulty: int) -> Record:
    # Leading digits 1..9 so both numbers have exactly `difficulty` digits.
    a = [rng.randint(1, 9)] + [rng.randrange(10) for _ in range(difficulty - 1)]
    b = [rng.randint(1, 9)] + [rng.randrange(10) for _ in range(difficulty - 1)]
    steps, written, carry = [], [], 0
    for x, y in zip(reversed(a), reversed(b)):
        total = x + y + carry
        steps.append(f"{x}+{y}+{carry}={total}")
        written.append(str(total % 10))
        carry = total // 10
    answer = ("1" if carry else "") + "".join(reversed(written))
    return Record(f"{''.join(map(str, a))}+{''.join(map(str, b))}", steps, answer)


PERMUTATION_CUPS = 6


def permutation(rng: random.Random, difficulty: int) -> Record:
    cup = rng.randint(1, PERMUTATION_CUPS)
    sentences, steps = [f"The ball is under cup {cup}."], []
    for _ in range(difficulty):
        i, j = rng.sample(range(1, PERMUTATION_CUPS + 1), 2)
        sentences.append(f"Swap {i} and {j}.")
        cup = j if cup == i else i if cup == j else cup
        steps.append(str(cup))
    sentences.append("Where is the ball?")
    return Record(" ".join(sentences), steps, steps[-1])


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


# -- overthink --------------------------------------------------------------------------------------
OVERTHINK_RECHECK_RATE = 0.6  # probability of each further re-check after a stated answer
OVERTHINK_MISTAKE_RATE = 0.2  # share of questions with a wrong first attempt (then "Wait, that is wrong." and a fix)
OVERTHINK_MAX_RECHECKS = 3
# The k-th re-check's opening (the last one repeats past the end): a different phrase per re-check lets a
# tiny model count its re-checks, so greedy decoding stops after the most likely number instead of looping.
RECHECK_PHRASES = ("Wait, let me check:", "Wait, let me check again:", "Wait, let me double-check:",
                   "Wait, one more time:")
CORRECTION_PHRASE = "Wait, that is wrong. Let me redo it:"


def answer_statement(answer: str) -> str:
    """How the overthink task states an answer in its reasoning."""
    return f"so the answer is {answer}."


def check_overthink_options(recheck_rate: float = OVERTHINK_RECHECK_RATE, mistake_rate: float = OVERTHINK_MISTAKE_RATE,
                            max_rechecks: int = OVERTHINK_MAX_RECHECKS) -> None:
    for name, rate in (("recheck-rate", recheck_rate), ("mistake-rate", mistake_rate)):
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise PonderError(f"--{name} must be a probability in [0, 1], got {rate}")
    if isinstance(max_rechecks, bool) or not isinstance(max_rechecks, int) or max_rechecks < 0:
        raise PonderError(f"--max-rechecks must be an integer >= 0, got {max_rechecks}")


def overthink(rng: random.Random, difficulty: int, recheck_rate: float = OVERTHINK_RECHECK_RATE,
              mistake_rate: float = OVERTHINK_MISTAKE_RATE, max_rechecks: int = OVERTHINK_MAX_RECHECKS) -> Record:
    """A running-sum problem whose reasoning states the answer, then re-checks it (and on some questions first errs).

    The mistake is a function of the question, not a coin: the questions that, read as a number, are below
    ``mistake_rate * 10 ** difficulty`` (a share ``mistake_rate`` of all questions; at 0.2 those starting with
    0 or 1) get a first attempt whose second addition is one too high, carried on to a wrong stated answer.
    A coin flip would be a minority continuation at every token, so greedy decoding of a model trained on it
    would never err first; a learnable rule makes it err where the data does. The number of re-checks is a coin:
    at least k if v < recheck_rate ** k (so each further one follows with probability recheck_rate), v the one
    random number drawn after the digits whatever the options, so the questions of a seed do not depend on them.
    """
    check_overthink_options(recheck_rate, mistake_rate, max_rechecks)
    digits = [rng.randrange(10) for _ in range(difficulty)]
    v = rng.random()

    def sums(error_at=None):
        out, total = [], 0
        for i, d in enumerate(digits):
            total = (total + d + (1 if i == error_at else 0)) % 10
            out.append(str(total))
        return out

    right = sums()
    answer = right[-1]
    steps = []
    if int("".join(map(str, digits))) < round(mistake_rate * 10 ** difficulty, 9):  # round: 0.3 * 100 is 30.000...04
        wrong = sums(min(1, difficulty - 1))  # the error carries on: the wrong answer is the right one + 1 (mod 10)
        steps += wrong + [answer_statement(wrong[-1]), CORRECTION_PHRASE]
    steps += right + [answer_statement(answer)]
    n_checks = 0
    while n_checks < max_rechecks and v < recheck_rate ** (n_checks + 1):
        steps += [RECHECK_PHRASES[min(n_checks, len(RECHECK_PHRASES) - 1)]] + right + [answer_statement(answer)]
        n_checks += 1
    return Record(" ".join(map(str, digits)), steps, answer)


@dataclass(frozen=True)
class Task:
    name: str
    make: Callable[..., Record]
    default_difficulty: int
    min_difficulty: int
    description: str
    check_options: Callable[..., None] | None = None  # the task's own options (keyword arguments of make)


TASKS = {
    "running-sum": Task("running-sum", running_sum, 6, 1, "running sums of digits mod 10"),
    "arith": Task("arith", arith, 8, 2, "multi-step integer arithmetic, <<a*b=c>> steps"),
    "graph-hop": Task("graph-hop", graph_hop, 3, 1, "follow k links in a random successor map"),
    "overthink": Task("overthink", overthink, 4, 1, "running sums stated, then re-checked; sometimes wrong first",
                      check_overthink_options),
    "running-product": Task("running-product", running_product, 6, 1, "running products of digits 1..6 mod 7"),
    "carry-add": Task("carry-add", carry_add, 4, 1, "multi-digit addition, one a+b+carry=sum step per column"),
    "permutation": Task("permutation", permutation, 6, 1, "follow a ball under six cups through k swaps"),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise PonderError(f"unknown task '{name}' (choose from {', '.join(TASKS)})")
    return TASKS[name]


def make_splits(task: str, n_train: int = 5000, n_val: int = 200, n_test: int = 500, seed: int = 0,
                difficulty: int | None = None, **options) -> dict[str, list[Record]]:
    """Draw disjoint train/val/test splits (no question appears in two splits).

    ``options``: the task's own knobs, keyword arguments of its function (overthink: ``recheck_rate``,
    ``mistake_rate``, ``max_rechecks``); checked before anything is drawn."""
    spec = get_task(task)
    if options:
        known = list(inspect.signature(spec.check_options).parameters) if spec.check_options else []
        for name in options:
            if name not in known:
                has = f" (it has {', '.join('--' + k.replace('_', '-') for k in known)})" if known else ""
                raise PonderError(f"--{name.replace('_', '-')} is not an option of the {task} task{has}")
        spec.check_options(**options)
    make = (lambda rng, d: spec.make(rng, d, **options)) if options else spec.make
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
            rec = make(rng, difficulty)
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
