"""One "machine" of a search on a shared database, for tests/test_tune_machines.py: run with its own
working directory, as a separate host would have; writes its trials under ./models/tune.

    python -m tests.tune_machine {tune|join} TINY_BERT STORAGE ARTIFACT_STORE [EPOCH_DELAY_S]

STORAGE and ARTIFACT_STORE ``-``: the journal file, no artifact store (a search on one machine).
"""

from __future__ import annotations

import logging
import sys
import time

from src import tuning
from tests.fixtures import bert_loaders

SPACE = {"learning_rate": [1e-4, 3e-4, 1e-3, 3e-3]}
HEARTBEAT_S, GRACE_S = 1, 8  # a killed worker's trial is failed and retried after 8 s without a heartbeat


class SlowLoader:
    """A training loader that takes ``delay`` seconds longer per epoch, so a trial lasts long enough to be killed."""

    def __init__(self, loader, delay: float):
        self.loader, self.delay = loader, delay

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        time.sleep(self.delay)
        return iter(self.loader)


def search_options(tiny_bert: str, storage: str | None, artifact_store: str | None) -> dict:
    """tune's arguments, the same on every machine (and for the one-machine search it is compared with)."""
    from src.models.training import train_model

    return dict(
        train=train_model,  # the search engine trains each trial with the function it is given
        method="grid",
        seed=1,
        base_hyperparameters={"num_epochs": 2},
        storage=storage,
        artifact_store=artifact_store,
        heartbeat_s=HEARTBEAT_S,
        grace_s=GRACE_S,
        fingerprint={"test": "machines"},
        model_name=tiny_bert,
    )


def main(role: str, tiny_bert: str, storage: str, artifact_store: str, delay: float = 0.0) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    _, train_loader, val_loader = bert_loaders(tiny_bert)
    if delay:
        train_loader = SlowLoader(train_loader, delay)
    run = tuning.tune if role == "tune" else tuning.join_search
    options = search_options(
        tiny_bert, None if storage == "-" else storage, None if artifact_store == "-" else artifact_store
    )
    run(train_loader, val_loader, "models/tune", SPACE, "cpu", **options)


if __name__ == "__main__":
    main(*sys.argv[1:5], *map(float, sys.argv[5:6]))
