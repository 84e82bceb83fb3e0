"""The small ALBERT of the embedded default: position-table initialisation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from secondorder.models.albert import build_model, sinusoidal_table

ARCH = {"vocab_size": 50, "embedding_size": 16, "hidden_size": 16, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 40}


class _Tok:
    pad_token_id = 0

    def __len__(self):
        return 50


def test_sinusoidal_table_by_hand_and_shift_invariant():
    table = sinusoidal_table(30, 6).double().numpy()
    # hand-worked entries: column 2i is sin(p / 10000^(2i/6)), column 2i+1 the cosine
    assert table[0].tolist() == pytest.approx([0, 1, 0, 1, 0, 1])
    p, w1 = 7, 10000 ** (-2 / 6)
    assert table[p, 2] == pytest.approx(math.sin(p * w1), abs=1e-7)
    assert table[p, 3] == pytest.approx(math.cos(p * w1), abs=1e-7)
    # the Gram matrix depends on the distance of two positions only (Toeplitz)
    gram = table @ table.T
    for k in range(-5, 6):
        diagonal = np.diagonal(gram, offset=k)
        assert np.ptp(diagonal) < 1e-5
    assert np.sqrt((table**2).mean()) == pytest.approx(1 / math.sqrt(2))
    assert sinusoidal_table(10, 7).shape == (10, 7)  # odd widths end with a sine column


def test_position_init_option():
    normal = build_model({"config": ARCH}, _Tok())
    sin = build_model({"config": ARCH, "position_init": "sinusoidal"}, _Tok())
    got = sin.albert.embeddings.position_embeddings.weight.detach()
    expected = sinusoidal_table(40, 16) * 0.02 * math.sqrt(2)  # RMS = initializer_range
    assert np.allclose(got.numpy(), expected.numpy())
    assert sin.albert.embeddings.position_embeddings.weight.requires_grad  # stays trainable
    other = normal.albert.embeddings.position_embeddings.weight.detach()
    assert not np.allclose(other.numpy(), expected.numpy())
    assert float(other.std()) == pytest.approx(0.02, rel=0.1)  # AlbertConfig's N(0, 0.02)
    with pytest.raises(ValueError, match="position_init"):
        build_model({"config": ARCH, "position_init": "learned"}, _Tok())
