"""What ``fit`` shows while it runs: a tqdm bar per epoch, a line per epoch, or nothing."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

__all__ = ["Progress", "format_logs"]

# Refreshing the bar's text costs more than a small training step; do it at
# most this often.
_REFRESH_SECONDS = 0.1


def format_logs(logs: dict[str, float]) -> str:
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())


class Progress:
    """``verbose=1``: a progress bar per epoch with the running loss;
    ``verbose=2``: one line per epoch; ``verbose=0``: silent."""

    def __init__(self, verbose: int, epochs: int, batches: int):
        self.verbose, self.epochs, self.batches = verbose, epochs, batches
        self._bar = None

    def epoch_begin(self, epoch: int) -> None:
        self._started = time.perf_counter()
        self._shown = 0.0
        if self.verbose == 1:
            self._bar = tqdm(
                total=self.batches,
                desc=f"Epoch {epoch + 1}/{self.epochs}",
                unit="batch",
                leave=True,
                dynamic_ncols=True,
            )

    def batch_end(self, running_loss: float, batches: int = 1) -> None:
        """``batches`` more batches done (a device reports several at once)."""
        if self._bar is None:
            return
        self._bar.update(batches)
        now = time.perf_counter()
        if now - self._shown >= _REFRESH_SECONDS:
            self._bar.set_postfix_str(f"loss: {running_loss:.4f}", refresh=False)
            self._shown = now

    def epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        seconds = time.perf_counter() - self._started
        if self._bar is not None:
            # The bar keeps to the totals and metrics; per-output losses go to
            # the History and to verbose=2's lines.
            shown = {k: v for k, v in logs.items() if k in ("loss", "val_loss") or not k.endswith("_loss")}
            self._bar.set_postfix_str(format_logs(shown), refresh=False)
            self._bar.close()  # draws the final state once
            self._bar = None
        elif self.verbose == 2:
            print(
                f"Epoch {epoch + 1}/{self.epochs} - {seconds:.2f}s - {format_logs(logs)}",
                file=sys.stdout,
                flush=True,
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
