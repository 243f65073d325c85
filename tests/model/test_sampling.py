"""spike2loihi.model.sampling.choose: the distribution it draws from, not only that it runs.

Expected probabilities are computed analytically (math.exp, float64) from the logits,
independently of the code under test. Frequency checks draw many times from a seeded
generator, so every run sees the same draws; the tolerances are chosen so that a
correct sampler passes for essentially any seed (see `_assert_frequencies`) while a
wrong distribution is off by many standard errors.
"""
import math

import pytest
import torch

from spike2loihi.model.sampling import choose


def _softmax(logits, temperature=1.0):
    """Softmax of logits / temperature with math.exp, for comparing against."""
    xs = [float(x) / temperature for x in logits]
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    return [x / sum(e) for x in e]


def _counts(logits, temperature, top_p, n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    toks = [choose(logits, False, temperature, top_p, gen) for _ in range(n)]
    return torch.bincount(torch.tensor(toks), minlength=len(logits)).tolist()


def _assert_frequencies(counts, probs, n_se=4.5):
    """Every token's frequency within n_se standard errors sqrt(p(1-p)/N) of its probability.

    Each count is binomial, close to normal at these N; a correct sampler exceeds 4.5 SE
    on a given token with probability ~7e-6, so on any of <= 6 tokens < 5e-5. The draws are
    seeded, so the outcome is fixed; the bound says it is not a lucky seed that passes.
    """
    n = sum(counts)
    for tok, (c, p) in enumerate(zip(counts, probs)):
        se = math.sqrt(p * (1 - p) / n)
        assert abs(c / n - p) <= n_se * se + 1e-12, (tok, c / n, p, se)


# --------------------------------------------------------------------------- greedy


def test_greedy_is_argmax_whatever_the_temperature_and_top_p():
    g = torch.Generator().manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    for _ in range(50):
        logits = torch.randn(37, generator=g) * 3
        best = max(range(37), key=lambda i: float(logits[i]))
        for temperature, top_p in [(1.0, 1.0), (0.01, 0.05), (100.0, 0.5)]:
            assert choose(logits, True, temperature, top_p, gen) == best
    # Ties: the first maximal index (torch.argmax's documented choice), so greedy is deterministic.
    assert choose(torch.tensor([0.0, 5.0, 1.0, 5.0]), True, 1.0, 1.0, gen) == 1


# --------------------------------------------------------------------------- temperature

# At T = 0.25 the argmax has probability 1 / (1 + e^-7 + e^-8 + e^-12) = 0.99875 (logits
# divided by T: gaps 1.75, 2, 3 become 7, 8, 12). Multiplying by T instead would shrink the
# gaps to 0.44, 0.5, 0.75 and give the argmax only 0.37.
SHARP = [1.0, -0.75, -1.0, -2.0]


def test_low_temperature_concentrates_on_the_argmax():
    T, n = 0.25, 20000
    probs = _softmax(SHARP, T)
    assert 0.998 < probs[0] < 0.9995  # about 99.9%, computed analytically
    assert _softmax([x * T for x in SHARP])[0] < 0.4  # what "logits * T" would give
    counts = _counts(torch.tensor(SHARP), T, 1.0, n, seed=3)
    # SE of the argmax frequency: sqrt(0.99875 * 0.00125 / 20000) = 2.5e-4.
    _assert_frequencies(counts, probs)


# Positions shuffled so that token ids and ranks differ.
SPREAD = [0.5, 2.0, -3.0, 0.0, 1.0, -1.0]


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_sampling_frequencies_match_softmax(temperature):
    n = 10000
    probs = _softmax(SPREAD, temperature)
    counts = _counts(torch.tensor(SPREAD), temperature, 1.0, n, seed=4)
    # SE <= sqrt(0.25 / 10000) = 0.005; T = 1 vs 2 moves the top probability by 0.14, i.e. ~28 SE.
    _assert_frequencies(counts, probs)


# --------------------------------------------------------------------------- top-p

# Probabilities (sorted): 0.4287, 0.2600, 0.1577, 0.0956, 0.0580, at tokens 1, 3, 4, 0, 2.
NUCLEUS = [0.5, 2.0, 0.0, 1.5, 1.0]


def _nucleus_masses(logits):
    """Tokens from most to least likely and the float64 cumulative mass of the top k, k = 1..V.

    The masses are summed from the float64 softmax that choose() samples from, so that a
    p exactly equal to one of them is an exact boundary."""
    probs = torch.softmax(logits.double(), dim=-1)
    ranked = sorted(range(len(logits)), key=lambda i: -float(logits[i]))
    return ranked, torch.cumsum(probs[ranked], 0).tolist()


def _drawn_set(logits, top_p, seeds=300):
    return {choose(logits, False, 1.0, top_p, torch.Generator().manual_seed(s)) for s in range(seeds)}


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_top_p_keeps_the_smallest_set_reaching_p_at_the_boundary(k):
    """p equal to the mass of the top k keeps exactly those k; one ulp more keeps k + 1.

    Over 300 seeds every kept token is drawn (the least likely kept one has renormalized
    probability >= 0.058: missed with probability < 1e-7) and excluded ones never are."""
    logits = torch.tensor(NUCLEUS)
    ranked, mass = _nucleus_masses(logits)
    lower = mass[k - 2] if k > 1 else 0.0
    cases = [
        (mass[k - 1], k),  # exactly the mass of the top k: they reach it
        (math.nextafter(mass[k - 1], 0.0), k),  # just below
        ((lower + mass[k - 1]) / 2, k),  # well inside (mass of the top k-1, mass of the top k]
        (math.nextafter(mass[k - 1], 1.0), k + 1),  # just above: the next token is needed
        (mass[k - 1] + 1e-6, k + 1),
    ]
    for top_p, n_kept in cases:
        assert _drawn_set(logits, top_p) == set(ranked[:n_kept]), (top_p, n_kept)


def test_top_p_tiny_keeps_only_the_argmax_and_renormalizes():
    logits = torch.tensor(NUCLEUS)
    assert _drawn_set(logits, 1e-12) == {1}
    # p = 0.9 keeps the top 4 (masses of the top 3 and 4: 0.846 < 0.9 <= 0.942); they are drawn
    # with their probabilities renormalized over the kept set, and token 2 never.
    ranked, mass = _nucleus_masses(logits)
    assert mass[2] < 0.9 <= mass[3]
    probs = _softmax(NUCLEUS)
    kept = sum(probs[i] for i in ranked[:4])
    expected = [0.0 if i == ranked[4] else probs[i] / kept for i in range(5)]
    counts = _counts(logits, 1.0, 0.9, 4000, seed=5)
    assert counts[ranked[4]] == 0
    _assert_frequencies(counts, expected)
