"""The options of ponder's commands, one documented dataclass each (TRL's pattern).

Each field is at once a command-line option (``options.py`` generates ``--max-steps`` from ``max_steps``),
a key of a ``--config`` YAML file, and a keyword of the Python API. A method's own training options live
in its config dataclass (``methods/*.py``), an exit policy's in ``ExitConfig``. This module imports
nothing heavy, so that ``ponder --help`` stays instant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional


@dataclass
class DataArguments:
    """Where the records come from (`ponder train` and `ponder eval`): a file in one of ponder's formats, a
    folder made by `ponder data make`, or anything `datasets` reads (a hub id, a dataset saved to disk, a
    parquet / arrow / CSV / JSON(L) file) with the names of its fields."""

    data: str = field(metadata={"help": "A data file, a folder holding train/test.jsonl, a dataset saved with "
                                        "save_to_disk, or a hub dataset id.", "panel": "Data"})
    format: Optional[str] = field(default=None, metadata={"help": "ponder's readers: qsa-json, qsa-jsonl, gsm8k or "
                                                                  "icot (default: detect).", "panel": "Data"})
    split: Optional[str] = field(default=None, metadata={"help": "The split to read (default: train for training, "
                                                                 "test for evaluation).", "panel": "Data"})
    subset: Optional[str] = field(default=None, metadata={"help": "A hub dataset's configuration name.",
                                                          "panel": "Data"})
    data_revision: Optional[str] = field(default=None, metadata={"help": "A hub dataset's branch, tag or commit.",
                                                                 "panel": "Data"})
    question_field: str = field(default="question", metadata={"help": "The column holding the question.",
                                                               "panel": "Data"})
    steps_field: str = field(default="steps", metadata={
        "help": "The column holding the reasoning: a list of steps, or one string split into its <<...>> "
                "equations if it has any, else into lines.", "panel": "Data"})
    answer_field: str = field(default="answer", metadata={"help": "The column holding the answer ('... #### 42' "
                                                                  "keeps 42).", "panel": "Data"})
    steps: Optional[str] = field(default=None, metadata={
        "help": "How a reasoning text splits into steps: 'lines', or 'equations' (only its <<...>> annotations). "
                "Default: lines for GSM8K files; for datasets, equations when there are any, else lines (iCoT "
                "text: always its equations).",
        "panel": "Data"})

    def records(self, default_split: str):
        """The records of the split (a list, or a lazy view over a ``datasets`` table)."""
        from ponder.data.hub import read_split

        return read_split(self, self.split or default_split)


@dataclass
class TrainArguments:
    """What every method's training takes besides its own config dataclass: the data, the starting model,
    where to save, and the optimisation budget. Each field is a ``ponder train`` option and a recipe key;
    the method's own fields (``CoLaRConfig`` ...) are added to both after these."""

    init: str = field(metadata={"help": "tiny | small | base (from scratch), a Hugging Face model directory or hub "
                                        "id, or a ponder model directory to continue from.", "panel": "Run"})
    out: str = field(metadata={"help": "Output model directory (checkpoints go in OUT/checkpoints).", "panel": "Run"})
    epochs: float = field(default=3.0, metadata={"help": "Passes over the data (ignored when --max-steps > 0)."})
    max_steps: int = field(default=-1, metadata={"help": "Optimizer steps; overrides --epochs when > 0."})
    lr: float | None = field(default=None, metadata={"help": "Peak learning rate. Default: per preset (tiny 5e-4), "
                                                             "2e-5 for a pretrained model, 2e-4 with LoRA."})
    batch_size: int = field(default=32, metadata={"help": "Examples per step and process."})
    grad_accum: int = field(default=1, metadata={"help": "Gradient accumulation steps."})
    warmup: float = field(default=0.05, metadata={"help": "Warm-up steps (>= 1) or fraction of training (< 1)."})
    scheduler: str = field(default="cosine", metadata={"help": "Any transformers LR schedule: cosine, linear, "
                                                                "constant, ..."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    save_steps: int = field(default=500, metadata={"help": "Save a checkpoint every N steps."})
    logging_steps: int = field(default=10, metadata={"help": "Log (and show) metrics every N steps."})
    seed: int = field(default=0, metadata={"help": "Seed of the initialisation, data order and sampling."})
    resume: bool = field(default=False, metadata={"help": "Continue from the last checkpoint in OUT/checkpoints."})
    bf16: bool | None = field(default=None, metadata={"help": "bf16 mixed precision (default: on when a bf16 GPU "
                                                               "is present)."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Run a model directory's own Python code "
                                                                      "(off unless you trust it)."})
    revision: str | None = field(default=None, metadata={"help": "With --init a hub id: its branch, tag or commit."})
    chat_template: bool | None = field(default=None, metadata={
        "help": "Train through the tokenizer's chat template (default: when --init has one); --no-chat-template "
                "keeps ponder's plain layout."})


@dataclass
class ModelArguments:
    """Which model a command runs and how it is loaded (TRL's ``ModelConfig``): `ponder eval` and `ponder ask`
    take these options, and ``load`` reads them."""

    model: str = field(metadata={"help": "A ponder model directory, a Hugging Face causal-LM directory or hub id "
                                         "(e.g. an explicit reasoner such as Qwen3 or R1-distill).", "panel": "Model"})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, ... (default: cuda if present).",
                                                        "panel": "Model"})
    dtype: str | None = field(default=None, metadata={"help": "float32, bfloat16 or float16 (default: bfloat16 on a "
                                                               "bf16 GPU, else float32).", "panel": "Model"})
    trust_remote_code: bool = field(default=False, metadata={"help": "Run a model directory's own Python code.",
                                                              "panel": "Model"})
    revision: str | None = field(default=None, metadata={"help": "With a hub id: its branch, tag or commit.",
                                                          "panel": "Model"})
    chat_template: bool | None = field(default=None, metadata={
        "help": "Ask a Hugging Face model through its tokenizer's chat template (default: when it has one).",
        "panel": "Model"})
    think_start: str | None = field(default=None, metadata={"help": "A Hugging Face reasoner's token that opens its "
                                                                     "thinking (default: <think>).", "panel": "Model"})
    think_end: str | None = field(default=None, metadata={"help": "... and the one that closes it (default: "
                                                                   "</think>).", "panel": "Model"})

    compile: bool = field(default=False, metadata={
        "help": "Decode through torch.compile (exact; pays a one-time compile, tens of seconds on CPU; see "
                "benchmarks/decode for where it wins).", "panel": "Model"})

    def load_front(self):
        """The model's tokenizer, layout and config only (``model.io.Front``): for a model served elsewhere."""
        from ponder.model.io import load_front

        return load_front(self.model, chat_template=self.chat_template, think_start=self.think_start,
                          think_end=self.think_end, revision=self.revision, trust_remote_code=self.trust_remote_code)

    def load(self):
        """The model (a ``PonderModel``), on ``device``."""
        import torch

        from ponder.model.io import load_model

        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        model = load_model(self.model, device=device, dtype=self.dtype, trust_remote_code=self.trust_remote_code,
                           chat_template=self.chat_template, think_start=self.think_start, think_end=self.think_end,
                           revision=self.revision, reasoner=True)
        if self.compile:
            model.compile_decoding()
        return model


@dataclass
class EvalArguments:
    """`ponder eval`: accuracy, pass@K, reasoning length and latency of a model on a data file."""

    n: Optional[int] = field(default=None, metadata={"help": "Only the first N examples."})
    samples: int = field(default=1, metadata={"help": "K samples per question for pass@K (needs a temperature)."})
    speeds: Optional[str] = field(default=None, metadata={"help": "Thinking speeds, e.g. 1,2,3 or auto (CoLaR; "
                                                                  "default: every speed).", "aliases": ["--speed"]})
    report: Optional[str] = field(default=None, metadata={"help": "Write the JSON report here."})
    plot: Optional[str] = field(default=None, metadata={"help": "Write the accuracy/length PNG here."})
    compare: Optional[List[str]] = field(default=None, metadata={"help": "Other reports to add to the table and plot."})
    batch_size: int = field(default=32, metadata={"help": "Questions decoded together."})
    temperature: float = field(default=0.0, metadata={"help": "Token sampling temperature (0 = greedy)."})
    latent_temperature: float = field(default=0.0, metadata={"help": "Latent sampling temperature (0 = the mean)."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling of answer tokens (with --temperature > 0)."})
    sample_stop: bool = field(default=False, metadata={
        "help": "End a latent chain by drawing </think> from the LM at each step instead of its argmax (the "
                "official CoLaR evaluation: --latent-temperature 1 --sample-stop --temperature 1 --top-p 0.9 "
                "--seeds 5)."})
    seeds: int = field(default=1, metadata={"help": "Runs with seeds seed..seed+N-1; the report gives their mean, "
                                                    "accuracy_std and accuracy_per_seed (needs sampling)."})
    max_new_tokens: int = field(default=256, metadata={"help": "Longest text decoded after the prompt."})
    max_latent_steps: int = field(default=64, metadata={"help": "Most latent steps before the thinking is ended."})
    seed: int = field(default=0, metadata={"help": "Seed of the sampling."})
    scoring: str = field(default="ponder", metadata={
        "help": "How an answer is judged: ponder (the decoded answer; numbers as numbers), lm-eval-strict / "
                "lm-eval-flexible (lm-evaluation-harness GSM8K: the first '#### N' / the last number of the text), "
                "boxed (the last \\boxed{...})."})


@dataclass
class AskArguments:
    """`ponder ask`: the reasoning and answer of a model for one question."""

    question: str = field(metadata={"help": "The question.", "argument": True})
    speed: Optional[str] = field(default=None, metadata={"help": "CoLaR thinking speed: 1..c_max or auto."})
    peek: bool = field(default=False, metadata={"help": "Show each latent step as its nearest tokens."})
    temperature: float = field(default=0.0, metadata={"help": "Token sampling temperature (0 = greedy)."})
    latent_temperature: float = field(default=0.0, metadata={"help": "Latent sampling temperature (0 = the mean)."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling of answer tokens (with --temperature > 0)."})
    max_new_tokens: int = field(default=256, metadata={"help": "Longest text decoded after the prompt."})
    max_latent_steps: int = field(default=64, metadata={"help": "Most latent steps before the thinking is ended."})
    show_probes: bool = field(default=False, metadata={"help": "With --exit: where the thinking stopped and why, and "
                                                               "each probe's answer."})


@dataclass
class BenchArguments:
    """`ponder bench`: the options of a benchmark run (each a --config key too)."""

    task: str = field(metadata={"help": "A built-in task (running-sum, arith, graph-hop, ...) or a data directory.",
                                "argument": True})
    out: str = field(metadata={"help": "Folder for runs/, results.json, results.md, pareto.png."})
    methods: str = field(default="nocot,cot,colar,colar-rl,coconut,codi,icot", metadata={"help": "Comma list of methods."})
    seeds: str = field(default="3", metadata={"help": "A count (3: seeds 0,1,2) or a list (0,4)."})
    budget: str = field(default="default", metadata={"help": "Data sizes and training steps per method (default, smoke)."})
    force: bool = field(default=False, metadata={"help": "Retrain and re-evaluate finished runs."})


@dataclass
class ServeArguments:
    """`ponder serve`: the model behind an OpenAI-compatible HTTP API (``serve/``), one engine stepping one
    continuous batch. The model is loaded with the ``ModelArguments`` options; docs/serve.md has the API."""

    host: str = field(default="127.0.0.1", metadata={"help": "Address to listen on (0.0.0.0: every interface).",
                                                     "panel": "Server"})
    port: int = field(default=8000, metadata={"help": "Port to listen on.", "panel": "Server"})
    max_batch: int = field(default=32, metadata={"help": "Most rows decoded together (a request with n > 1 takes n); "
                                                         "more wait, and join as rows leave.", "panel": "Server"})
    max_queue: int = field(default=256, metadata={"help": "Most rows waiting beyond the batch; a request that "
                                                          "would pass it gets 429 with Retry-After.",
                                                  "panel": "Server"})
    api_key: Optional[str] = field(default=None, metadata={
        "help": "Require 'Authorization: Bearer KEY' on /v1 (default: the PONDER_API_KEY environment variable, "
                "else no key).", "panel": "Server"})
    served_model_name: Optional[str] = field(default=None, metadata={
        "help": "The model's name in the API (default: --model as given).", "panel": "Server"})
    max_tokens: int = field(default=256, metadata={"help": "Longest completion (thinking tokens included) when a "
                                                           "request gives no max_tokens.", "panel": "Server"})
    max_latent_steps: int = field(default=64, metadata={"help": "Most latent steps when a request gives no budget "
                                                                "(CoLaR).", "panel": "Server"})
    shutdown_timeout: int = field(default=30, metadata={"help": "On shutdown, seconds running requests get to "
                                                                "finish before they are cancelled.", "panel": "Server"})
    log_level: str = field(default="info", metadata={"help": "uvicorn's log level: critical, error, warning, info, "
                                                             "debug.", "panel": "Server"})
    upstream: Optional[str] = field(default=None, metadata={
        "help": "Decode through this OpenAI-compatible server (vLLM, SGLang, ponder serve: e.g. "
                "http://gpu-node:8000/v1) with ponder's exit policies in front; --model then only gives the "
                "tokenizer, chat template and thinking delimiters (no weights are loaded).", "panel": "Upstream"})
    upstream_model: Optional[str] = field(default=None, metadata={
        "help": "The model's name upstream (default: the first of its /v1/models).", "panel": "Upstream"})
    upstream_api_key: Optional[str] = field(default=None, metadata={
        "help": "Bearer key for the upstream (default: the UPSTREAM_API_KEY environment variable).",
        "panel": "Upstream"})


POLICIES = ("none", "budget", "convergence", "confidence", "trim", "nowait")
_PANEL = "Exit policy"


def _exit_field(default, help: str):
    return field(default=default, metadata={"help": help, "panel": _PANEL})


@dataclass
class ExitConfig:
    """When an explicit reasoner (cot, icot, a Hugging Face reasoner) stops thinking: the exit policy and its
    parameters, each defaulted to its paper's published value (``inference/exits.py`` implements them).
    `ponder eval --exit convergence --patience 3`, and in Python
    ``Decoder(model, exit=ExitConfig(exit="confidence", threshold=0.9))``.

    Comma lists are plain strings (``"Wait,\\n\\n"``: ``\\n`` is read as a newline)."""

    exit: str = _exit_field("none", "none | budget (s1: at most --budget thinking tokens) | convergence (Dynasor-CoT: "
                                    "stop at --patience equal probe answers) | confidence (DEER: probe at --markers, "
                                    "stop at --threshold) | trim (TrimR: stop after --agree agreeing thoughts) | "
                                    "nowait (NoWait: the --suppress words are never written).")
    budget: Optional[int] = _exit_field(None, "budget: the most thinking tokens, then the end of thinking and the "
                                              "answer cue are forced (s1; 0 closes the thinking at once). trim: the "
                                              "budget whose half arms the under-thinking guard (default: "
                                              "--max-new-tokens).")
    wait: int = _exit_field(0, "budget: write 'Wait' instead of the model's own end of thinking, up to this many "
                               "times (s1's way to think longer; s1 tried 2, 4, 6).")
    probe_every: int = _exit_field(32, "convergence: probe every N thinking tokens (Dynasor-CoT: 32).")
    patience: int = _exit_field(3, "convergence: stop when this many probe answers in a row are equal and non-empty "
                                   "(Dynasor-CoT: 3).")
    hedges: str = _exit_field("wait,hold,but,okay,no,hmm", "convergence: a probe whose text holds one of these words "
                                                           "(any case, whole words) blocks the stop (Dynasor-CoT's "
                                                           "list).")
    markers: str = _exit_field("Wait,\\n\\n", "confidence, trim: the reflection markers where a new thought starts "
                                             "(DEER's transition point 'Wait', paragraph breaks); a token holding one "
                                             "is a probe point.")
    threshold: float = _exit_field(0.95, "confidence: stop when the probe's answer confidence (mean probability of its "
                                         "answer tokens after the first) reaches this (DEER: 0.95).")
    max_probes: int = _exit_field(10, "confidence: at most this many probes per question (DEER: 10).")
    agree: int = _exit_field(2, "trim: stop once this many thoughts in a row each give the answer of the thought "
                                "before (TrimR: 2).")
    max_thoughts: int = _exit_field(20, "trim: under-thinking guard, stop past half the budget with more than this "
                                        "many thoughts (TrimR: 20).")
    verifier: Optional[str] = _exit_field(None, "trim: a model directory or hub id that reads the question and each "
                                                "thought and gives its answer (default: the reasoner itself, probed).")
    suppress: str = _exit_field("wait,alternatively,hmm,but,however,check,double-check,maybe,verify,again,oh,ah",
                                "nowait: every token spelling one of these words (any case, spaces and punctuation "
                                "around it) gets a -inf logit (NoWait's keywords).")
    answer_cue: Optional[str] = _exit_field(None, "Text written after the end of thinking, in probes and forced exits "
                                                  "(default: the layout's answer prefix, 'Answer:' for ponder models, "
                                                  "'Final Answer:' for outside reasoners).")
    probe_tokens: int = _exit_field(20, "The most tokens a probe decodes after the cue (it stops at <eos>; its "
                                        "answer is the first line) (DEER and Dynasor-CoT: 20).")

    def __post_init__(self):
        from ponder.errors import PonderError

        if self.exit not in POLICIES:
            raise PonderError(f"--exit must be one of {', '.join(POLICIES)}, got '{self.exit}'")
        if self.exit == "budget" and self.budget is None:
            raise PonderError("--exit budget needs --budget N (the most thinking tokens)")
        if self.budget is not None and self.budget < 0:
            raise PonderError(f"--budget must be >= 0, got {self.budget}")
        if not 0 < self.threshold <= 1:
            raise PonderError(f"--threshold must be in (0, 1], got {self.threshold}")
        for name in ("probe_every", "patience", "max_probes", "agree", "max_thoughts", "probe_tokens"):
            if getattr(self, name) < 1:
                raise PonderError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.wait < 0:
            raise PonderError(f"--wait must be >= 0, got {self.wait}")
        if self.verifier is not None and self.exit != "trim":
            raise PonderError(f"--verifier is for --exit trim, not --exit {self.exit}")
        for name, policies in (("markers", ("confidence", "trim")), ("suppress", ("nowait",))):
            if self.exit in policies and not self.words(name):
                raise PonderError(f"--exit {self.exit} needs at least one word in --{name}")

    def words(self, name: str) -> list[str]:
        """A comma-list field as its items (``\\n`` read as a newline)."""
        return [w.replace("\\n", "\n") for w in getattr(self, name).split(",") if w]

    @property
    def label(self) -> str:
        """The policy as a method suffix in reports: ``cot+convergence``, ``cot+budget:32``."""
        return self.exit + (f":{self.budget}" if self.exit == "budget" else "")
