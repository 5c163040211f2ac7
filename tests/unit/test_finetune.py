"""The large tier's partial fine-tuning (train/finetune.py): the cached lower layers plus the
top layers must give what serving's whole encoder gives, and the length-sorted batches must
cover every training row once per epoch."""

import pytest
import torch

from tiffin.families import minilm
from train import datasets, finetune

TEXTS = [
    "A joyless, tedious slog.",
    "Warm.",
    "The second half drags, but the cast is so good that you forgive it almost everything, even the ending.",
    "",
    "An unexpectedly moving film about grief, friendship and the stubbornness of hope.",
]


@pytest.fixture(scope="module")
def encoder():
    return minilm.SentenceEncoder(datasets.minilm_dir())


@pytest.mark.parametrize("frozen", [0, 4, 6])
def test_top_layers_over_cached_states_give_the_served_embedding(encoder, frozen):
    states = finetune.frozen_states(encoder, TEXTS, frozen, batch_size=2)
    assert [len(s) for s in states] == encoder.tokenize(TEXTS)["attention_mask"].sum(1).tolist()
    top = finetune.TopLayers(encoder.model, frozen, 2).eval()
    # batches of 2 mix lengths and pad differently from encode's one batch of 5: padding must not matter
    assert torch.allclose(finetune.predict(top.embed, states, batch_size=2), encoder.encode(TEXTS), atol=1e-5)


@pytest.mark.parametrize("n,batch_size", [(1, 4), (37, 4), (finetune.POOL * 8 + 3, 8)])
def test_length_batches_cover_each_row_once_in_batch_count_batches(n, batch_size):
    gen = torch.Generator().manual_seed(n)
    rows = [torch.randn(int(torch.randint(1, 30, (1,), generator=gen)), 3) for _ in range(n)]
    seen, count = [], 0
    for epoch in (0, 1):
        for (hidden, mask), idx in finetune.length_batches(rows, torch.arange(n), batch_size, seed=0)(epoch):
            lengths = [len(rows[i]) for i in idx]
            assert len(idx) <= batch_size and hidden.shape[1] == max(lengths) == mask.shape[1]
            assert mask.sum(1).tolist() == lengths
            assert all(torch.equal(hidden[j, : lengths[j]], rows[i]) for j, i in enumerate(idx.tolist()))
            seen += idx.tolist()
            count += 1
    assert sorted(seen) == sorted(list(range(n)) * 2) and count == 2 * finetune.batch_count(n, batch_size)
