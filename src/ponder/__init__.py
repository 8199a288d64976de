"""ponder: make language-model reasoning fast.

Train a model to think silently in compressed latent vectors (CoLaR), pick its thinking speed at
inference, and compare it honestly against chain-of-thought and direct answering.
"""

__version__ = "0.1.0"

from ponder.data.records import Record, read_records, write_jsonl  # noqa: E402
from ponder.errors import DataError, PonderError  # noqa: E402

__all__ = ["Record", "read_records", "write_jsonl", "DataError", "PonderError", "__version__"]
