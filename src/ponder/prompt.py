"""The prompt layout: the one place that decides which tokens a model sees, for training and inference.

    [bos] "Question: {question}\n" ["Speed: {c}\n"] <think> reasoning </think> "Answer: {answer}" <eos>

* ``<think>`` / ``</think>`` are the thinking separators (added as special tokens to every model).
* The speed marker is CoLaR's thinking speed, the compression factor ``c`` (or ``auto``). CoT fills it
  with speed 1, as the CoLaR codebase does: a CoT model *is* CoLaR at ``c = 1``, so CoLaR training can
  continue from it without a jump. No-CoT leaves it out and its prompt already ends with ``</think>``.
* The reasoning is the steps joined by spaces. CoLaR replaces its token embeddings by compressed vectors.

An explicit reasoner from outside ponder (Qwen3, R1-distill, ... as a Hugging Face directory) is asked
through its own chat template instead (``chat_template``): the question is the user turn, the model opens
and closes its thinking with its own delimiters (``think_start`` / ``think_end``), and the answer is the
text after the end of thinking -- the prompt it was trained on, and the one vLLM would build.

Every piece is encoded on its own and concatenated, so training sequences and inference prompts share
their tokens exactly (a BPE merge can never cross a separator).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

THINK_START = "<think>"
THINK_END = "</think>"


@dataclass
class PromptLayout:
    question_template: str = "Question: {question}\n"
    speed_template: str = "Speed: {speed}\n"
    answer_template: str = "Answer: {answer}"
    step_separator: str = " "
    chat_template: bool = False  # prompts through the tokenizer's chat template (inference of outside reasoners)
    think_start: str = THINK_START
    think_end: str = THINK_END

    def to_dict(self) -> dict:
        return asdict(self)

    # -- pieces ---------------------------------------------------------------------------------------
    def _ids(self, tokenizer, text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def question_ids(self, tokenizer, question: str) -> list[int]:
        bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        return bos + self._ids(tokenizer, self.question_template.format(question=question))

    def speed_ids(self, tokenizer, speed: int | str | None) -> list[int]:
        """The thinking-speed marker; encoded on its own so training can swap it per batch."""
        return [] if speed is None else self._ids(tokenizer, self.speed_template.format(speed=speed))

    def prompt_ids(self, tokenizer, question: str, speed: int | str | None) -> list[int]:
        """Question and speed marker, ending with ``<think>``: where reasoning (tokens or latents) starts."""
        return (self.question_ids(tokenizer, question) + self.speed_ids(tokenizer, speed)
                + [tokenizer.convert_tokens_to_ids(THINK_START)])

    def reasoning_ids(self, tokenizer, steps: list[str]) -> list[int]:
        return self._ids(tokenizer, self.step_separator.join(steps))

    def answer_ids(self, tokenizer, answer: str) -> list[int]:
        """``</think>``, the answer, ``<eos>``: what every method must produce after its reasoning."""
        end = tokenizer.convert_tokens_to_ids(THINK_END)
        return [end] + self._ids(tokenizer, self.answer_template.format(answer=answer)) + [tokenizer.eos_token_id]

    # -- inference ------------------------------------------------------------------------------------
    def think_ids(self, tokenizer) -> tuple[int, int]:
        """The token ids of the thinking delimiters (each is one token: ``load_model`` checks it)."""
        return tokenizer.convert_tokens_to_ids(self.think_start), tokenizer.convert_tokens_to_ids(self.think_end)

    def generation_prompt(self, tokenizer, question: str, speed: int | str | None, think: bool) -> list[int]:
        """The prompt a model continues at inference. Without thinking (No-CoT) it ends with ``</think>``."""
        if self.chat_template:
            # enable_thinking is read by templates that can switch thinking off (Qwen3) and ignored by others;
            # a template that opens the thinking itself (R1-distill) ends with think_start already.
            return list(tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                                      tokenize=True, return_dict=False, enable_thinking=think))
        ids = self.prompt_ids(tokenizer, question, speed)
        return ids if think else ids + [tokenizer.convert_tokens_to_ids(THINK_END)]

    def parse_answer(self, text: str) -> str:
        """The answer from the text decoded after ``</think>`` (the answer template stripped)."""
        prefix, _, suffix = self.answer_template.partition("{answer}")
        text = text.strip()
        if prefix.strip() and text.startswith(prefix.strip()):
            text = text[len(prefix.strip()):]
        if suffix.strip() and text.endswith(suffix.strip()):
            text = text[: -len(suffix.strip())]
        return text.strip()
