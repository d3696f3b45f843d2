"""A million random and mutated inputs: nothing escapes the decoder, accounting stays exact."""

from __future__ import annotations

import pytest

from ecg_edge.firmware_bridge.fuzz import fuzz_decoder


@pytest.mark.slow
def test_a_million_inputs_never_raise_and_keep_byte_accounting():
    result = fuzz_decoder(inputs=1_000_000, seed=20240601, ascii_inputs=100_000, workers=2)
    print(f"\nfuzz: {result.as_dict()}")
    assert result.inputs >= 1_000_000 and result.batch_inputs == result.inputs
    assert result.ascii_inputs == 100_000
    assert result.frames_found > 100_000  # the mutated inputs do reach real frames
    assert result.exceptions == 0, result.first_failures
    assert result.invariant_violations == 0, result.first_failures
    assert result.chunking_mismatches == 0


def test_fuzz_harness_detects_a_decoder_that_raises(monkeypatch):
    # The fuzzer itself must be able to fail: break the payload parser and watch it count.
    import ecg_edge.firmware_bridge.decoder as decoder

    def broken(*args):
        raise IndexError("boom")

    monkeypatch.setattr(decoder, "parse_payload", broken)
    result = fuzz_decoder(inputs=2000, seed=1, ascii_inputs=0)
    assert result.exceptions > 0 and "IndexError" in result.first_failures[0]
