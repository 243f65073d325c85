"""Next-token choice: argmax, or temperature then nucleus (top-p) sampling.

Temperature divides the logits before the softmax; top-p keeps the smallest set
of most likely tokens whose probability reaches p (the token that crosses p is
kept). Sampling draws from a seeded torch.Generator, so a seed fixes the output.
"""
import torch


def choose(logits: torch.Tensor, greedy: bool, temperature: float, top_p: float,
           generator: torch.Generator) -> int:
    if greedy:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.double() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = torch.sort(probs, descending=True)
        mass = torch.cumsum(sorted_p, 0)
        # Mass of the strictly more likely tokens: the previous running sum itself, since
        # cumsum - sorted_p can be an ulp below it and keep one token too many at p == mass.
        before = torch.cat((mass.new_zeros(1), mass[:-1]))
        keep = before < top_p
        mask = torch.zeros_like(probs, dtype=torch.bool)
        mask[order[keep]] = True
        probs = torch.where(mask, probs, torch.zeros_like(probs))
        probs = probs / probs.sum()
    return int(torch.multinomial(probs, 1, generator=generator))
