#!/usr/bin/env python3
"""PyTorch (eager) reference of the language-model side of zero-to-r1, for benchmarks.

The same GPT as ``src/lm/model.rs`` (pre-norm blocks, learned token and position embeddings,
LayerNorm with eps 1e-5, causal attention that also hides left padding, a tanh-GELU MLP, an
untied output head without bias), the same batch layout as ``src/lm/generate.rs`` (prompts
padded on the left, positions counted from the first prompt token, KV-cache sampling) and the
same GRPO step as ``src/lm/grpo/`` (clipped surrogate + beta * k3, ``response-mean``
aggregation, group advantages, two shuffled minibatches, gradient-norm clip 1.0, AdamW),
written the way a PyTorch user would write it: ``nn.Module``s, ``F.scaled_dot_product_attention``,
``torch.multinomial``, ``torch.optim.AdamW``.

Three measurements, each the median of ``--repeats`` runs after one warm-up:

* ``rollout_tokens_per_s``: B*G prompts, exactly ``max_new_tokens`` new tokens each with the KV
  cache at temperature 1 (no early stop), B*G*max_new_tokens / seconds.
* ``train_tokens_per_s``: one forward + backward + gradient clip + AdamW step of the GRPO loss
  on all B*G rows of length P + R, B*G*(P + R) / seconds.
* ``grpo_step_s``: rollout, reference forward, stand-in rewards, group advantages, then two
  minibatches of forward + backward + clip + AdamW.

Run ``python benches/torch_lm.py --help``; ``--check`` runs the correctness checks.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------
# Tokenizer (src/lm/tokenizer.rs): 6 special tokens, then one token per character.

SPECIALS = ["<pad>", "<eos>", "<think>", "</think>", "<answer>", "</answer>"]
CHARS = "0123456789+-*/=(),.:; \nabcdefghijklmnopqrstuvwxyz"
PAD, EOS = 0, 1
VOCAB = len(SPECIALS) + len(CHARS)  # 55


def encode(text: str) -> list[int]:
    """Characters only (the prompts here contain no special tags)."""
    return [len(SPECIALS) + CHARS.index(c) for c in text]


def decode_response(ids: list[int]) -> str:
    """Everything before the first end-of-sequence, without padding (as `decode_response`)."""
    out = []
    for i in ids:
        if i == EOS:
            break
        if i != PAD:
            out.append(SPECIALS[i] if i < len(SPECIALS) else CHARS[i - len(SPECIALS)])
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# Configs (configs/addition-cpu.toml and configs/countdown-gpu.toml).


@dataclass
class BenchConfig:
    name: str
    vocab: int
    context: int
    d_model: int
    layers: int
    heads: int
    mlp: int
    prompts: int  # B
    group_size: int  # G
    max_new_tokens: int  # R
    minibatches: int
    clip: float
    beta: float
    lr: float
    weight_decay: float
    max_grad_norm: float
    task: str


CONFIGS = {
    "cpu": BenchConfig("addition-cpu", VOCAB, 64, 128, 4, 4, 512, 16, 8, 48, 2, 0.2, 0.04,
                       2e-4, 0.0, 1.0, "addition"),
    "gpu": BenchConfig("countdown-gpu", VOCAB, 128, 512, 8, 8, 2048, 64, 8, 96, 2, 0.2, 0.04,
                       1e-4, 0.0, 1.0, "countdown"),
}


def rust_parameter_count(c: BenchConfig) -> int:
    """`GptConfig::parameters` of src/lm/model.rs, transcribed."""
    v, ctx, d, m = c.vocab, c.context, c.d_model, c.mlp
    block = 2 * 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * m + m) + (m * d + d)
    return v * d + ctx * d + c.layers * block + 2 * d + d * v


def addition_prompts(b: int) -> list[str]:
    """B distinct two-digit addition prompts; the first is "47+85="."""
    out = []
    for i in range(b):
        x = 10 + (37 + 29 * i) % 90
        y = 10 + (75 + 31 * i) % 90
        out.append(f"{x:02d}+{y:02d}=")
    assert len(set(out)) == b, "addition prompts must be distinct"
    return out


def countdown_prompts(b: int) -> list[str]:
    """B Countdown-style prompts with four numbers, "n1,n2,n3,n4 to T=" (lengths 13 to 18
    tokens, so rows are left-padded to the longest, as in a real Countdown batch)."""
    out = []
    for i in range(b):
        nums = sorted([1 + (5 * i) % 12, 1 + (7 * i + 3) % 12, 25 * (1 + i % 4),
                       1 + (11 * i + 6) % 12])
        target = 10 + (37 * i) % 990
        out.append(",".join(str(n) for n in nums) + f" to {target}=")
    return out


def make_prompts(c: BenchConfig) -> list[list[int]]:
    """B prompts, each repeated G times (consecutive rows form a group)."""
    texts = addition_prompts(c.prompts) if c.task == "addition" else countdown_prompts(c.prompts)
    return [encode(t) for t in texts for _ in range(c.group_size)]


# ---------------------------------------------------------------------------------------------
# The model (src/lm/model.rs).


class Attention(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x, allowed, cache=None):
        """x (B, T, C); allowed (B, 1, T, T_k) bool, True where a query may look; cache a
        dict holding this block's keys and values (B, H, T_cached, d_h), extended in place."""
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        if cache is not None:
            if "k" in cache:
                k = torch.cat([cache["k"], k], dim=2)
                v = torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class Mlp(nn.Module):
    def __init__(self, d: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(d, hidden)
        self.fc2 = nn.Linear(hidden, d)

    def forward(self, x):
        # candle's `gelu` is the tanh approximation.
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class Block(nn.Module):
    """A pre-norm block: x + attention(norm(x)), then x + MLP(norm(x)). Parameter names are
    those of model.rs (blocks.i.ln1, blocks.i.attn.qkv, blocks.i.mlp.fc1, ...), so a Rust
    checkpoint loads as it is."""

    def __init__(self, d: int, heads: int, mlp: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(d, eps=1e-5)
        self.attn = Attention(d, heads)
        self.ln2 = nn.LayerNorm(d, eps=1e-5)
        self.mlp = Mlp(d, mlp)

    def forward(self, x, allowed, cache=None):
        x = x + self.attn(self.ln1(x), allowed, cache)
        return x + self.mlp(self.ln2(x))


class Gpt(nn.Module):
    def __init__(self, c: BenchConfig):
        super().__init__()
        self.config = c
        self.tok_emb = nn.Embedding(c.vocab, c.d_model)
        self.pos_emb = nn.Embedding(c.context, c.d_model)
        self.blocks = nn.ModuleList(Block(c.d_model, c.heads, c.mlp) for _ in range(c.layers))
        self.ln_f = nn.LayerNorm(c.d_model, eps=1e-5)
        self.head = nn.Linear(c.d_model, c.vocab, bias=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self):
        """GPT-2's scheme, as in model.rs: normal(0, 0.02), the output projections of each
        block (attn.proj, fc2) scaled by 1/sqrt(2 * layers), biases 0, norms 1 and 0."""
        resid = 0.02 / math.sqrt(2 * self.config.layers)
        for name, p in self.named_parameters():
            if ".ln" in name or name.startswith("ln_f"):
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            elif name.endswith("bias"):
                p.zero_()
            elif name.endswith("proj.weight") or name.endswith("fc2.weight"):
                p.normal_(0.0, resid)
            else:
                p.normal_(0.0, 0.02)

    def forward(self, tokens, positions, allowed, caches=None):
        x = self.tok_emb(tokens) + self.pos_emb(positions)
        for i, block in enumerate(self.blocks):
            x = block(x, allowed, None if caches is None else caches[i])
        return self.head(self.ln_f(x))


def load_rust_checkpoint(directory: str, device) -> Gpt:
    """A model from a Rust checkpoint folder (model.toml + model.safetensors, as written by
    src/lm/checkpoint.rs). The safetensors file is read directly: an 8-byte little-endian
    header length, a JSON header of name -> dtype, shape and byte offsets, then the data."""
    import os
    import struct
    import tomllib

    with open(os.path.join(directory, "model.toml"), "rb") as f:
        shape = tomllib.load(f)
    c = BenchConfig("checkpoint", shape["vocab"], shape["context"], shape["d_model"],
                    shape["layers"], shape["heads"], shape["mlp"], 1, 2, 48, 1, 0.2, 0.0,
                    1e-4, 0.0, 1.0, "addition")
    model = Gpt(c)
    with open(os.path.join(directory, "model.safetensors"), "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    state = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise ValueError(f"{name}: dtype {info['dtype']}, expected F32")
        a, b = info["data_offsets"]
        state[name] = torch.frombuffer(bytearray(data[a:b]), dtype=torch.float32).reshape(
            info["shape"])
    missing = set(dict(model.named_parameters())) ^ set(state)
    if missing:
        raise ValueError(f"checkpoint and model disagree on {sorted(missing)}")
    model.load_state_dict(state)
    return model.to(device)


def parameter_counts(model: Gpt) -> tuple[int, int]:
    """(all parameters, parameters outside the two embedding tables)."""
    total = sum(p.numel() for p in model.parameters())
    emb = model.tok_emb.weight.numel() + model.pos_emb.weight.numel()
    return total, total - emb


# ---------------------------------------------------------------------------------------------
# Batch layout (src/lm/generate.rs).


def left_pad(prompts: list[list[int]], device) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens (B, P) left-padded with PAD, pads (B,))."""
    p = max(len(x) for x in prompts)
    rows = [[PAD] * (p - len(x)) + x for x in prompts]
    pads = [p - len(x) for x in prompts]
    return (torch.tensor(rows, dtype=torch.long, device=device),
            torch.tensor(pads, dtype=torch.long, device=device))


def positions(pads, start: int, length: int):
    """Position ids (B, length) of columns start..start+length: 0 at each row's first prompt
    token, whatever its padding (padding columns get 0 too)."""
    cols = torch.arange(start, start + length, device=pads.device)
    return (cols[None, :] - pads[:, None]).clamp(min=0)


def allowed_mask(pads, start: int, length: int):
    """(B, 1, length, start + length) bool: query column i may see key column j if j <= i and
    j is not left padding; a padding query sees itself, so that no softmax row is empty."""
    q = torch.arange(start, start + length, device=pads.device)[:, None]
    k = torch.arange(start + length, device=pads.device)[None, :]
    ok = ((k <= q)[None] & (k[None] >= pads[:, None, None])) | (k == q)[None]
    return ok[:, None]


@torch.no_grad()  # (inference_mode tensors could not be trained on afterwards)
def generate(model: Gpt, prompts, pads, new_tokens: int, temperature: float = 1.0,
             generator=None):
    """Samples exactly `new_tokens` tokens per row with the KV cache (no stop at EOS: every row
    computes every step). Returns (tokens (B, P + R), logp (B, R)): the sampled tokens and
    their log-probabilities under the model (temperature 1)."""
    b, p = prompts.shape
    caches = [dict() for _ in model.blocks]
    inp, start, length = prompts, 0, p
    out, logps = [], []
    for _ in range(new_tokens):
        logits = model(inp, positions(pads, start, length), allowed_mask(pads, start, length),
                       caches)[:, -1].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        if temperature == 0.0:
            nxt = logits.argmax(dim=-1, keepdim=True)  # greedy: the first most likely token
        else:
            probs = torch.softmax(logits / temperature, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
        out.append(nxt)
        logps.append(logprobs.gather(1, nxt))
        inp, start, length = nxt, start + length, 1
    return torch.cat([prompts] + out, dim=1), torch.cat(logps, dim=1)


def response_logp(model: Gpt, tokens, prompt_len: int, pads):
    """Per-token log-probabilities (B, R) of the response columns from one full forward pass:
    the logits at column t predict the token at column t + 1."""
    length = tokens.shape[1]
    r = length - prompt_len
    logits = model(tokens, positions(pads, 0, length), allowed_mask(pads, 0, length))
    logits = logits[:, prompt_len - 1:prompt_len - 1 + r].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    return logprobs.gather(2, tokens[:, prompt_len:, None]).squeeze(2)


# ---------------------------------------------------------------------------------------------
# The GRPO objective (src/objective.rs) and advantages (src/advantage.rs).


def grpo_loss(logp, old_logp, ref_logp, adv, mask, clip: float, beta: float):
    """Clipped surrogate + beta * k3(ref || policy) per token, aggregated `response-mean`:
    each response's mean over its real tokens, then the mean over responses."""
    ratio = torch.exp(logp - old_logp)
    per_token = -torch.minimum(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv)
    if beta != 0.0:
        x = ref_logp - logp
        per_token = per_token + beta * (torch.exp(x) - 1 - x)
    lengths = mask.sum(1).clamp(min=1.0)
    return ((per_token * mask).sum(1) / lengths).sum() / max(logp.shape[0], 1)


def group_advantages(rewards, group_size: int, eps: float = 1e-4):
    """(r - mean) / (std + eps) within each group of G, unbiased std; a group whose rewards are
    all equal gets exactly 0."""
    g = rewards.view(-1, group_size)
    mean = g.mean(1, keepdim=True)
    std = g.std(1, unbiased=True, keepdim=True)
    adv = (g - mean) / (std + eps)
    flat = (g == g[:, :1]).all(1, keepdim=True)
    return torch.where(flat, torch.zeros_like(adv), adv).reshape(-1)


# ---------------------------------------------------------------------------------------------
# Benchmark pieces.


class Bench:
    def __init__(self, c: BenchConfig, device: torch.device, dtype: str, seed: int):
        self.c, self.device, self.dtype = c, device, dtype
        torch.manual_seed(seed)
        self.policy = Gpt(c).to(device)
        self.reference = Gpt(c).to(device)
        self.reference.load_state_dict(self.policy.state_dict())
        self.reference.requires_grad_(False)
        self.opt = torch.optim.AdamW(self.policy.parameters(), lr=c.lr, betas=(0.9, 0.999),
                                     eps=1e-8, weight_decay=c.weight_decay)
        self.prompts, self.pads = left_pad(make_prompts(c), device)
        self.prompt_len = self.prompts.shape[1]
        self.new_tokens = min(c.max_new_tokens, c.context - self.prompt_len)
        self.gen = torch.Generator(device=device)
        self.gen.manual_seed(seed)
        self.shuffle = torch.Generator()
        self.shuffle.manual_seed(seed + 1)

    def autocast(self):
        if self.dtype == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return torch.autocast(device_type=self.device.type, enabled=False)

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def rollout(self):
        self.policy.eval()
        with self.autocast():
            return generate(self.policy, self.prompts, self.pads, self.new_tokens,
                            generator=self.gen)

    @torch.no_grad()
    def reference_logp(self, tokens):
        with self.autocast():
            return response_logp(self.reference, tokens, self.prompt_len, self.pads)

    def update(self, rows, tokens, old_logp, ref_logp, adv, mask):
        """One optimizer step on the rows `rows` (None: all): forward, GRPO loss, backward,
        global gradient-norm clip, AdamW."""
        c = self.c
        pads = self.pads
        if rows is not None:
            tokens, pads = tokens[rows], pads[rows]
            adv, mask, ref_logp = adv[rows], mask[rows], ref_logp[rows]
            old_logp = None if old_logp is None else old_logp[rows]
        self.policy.train()
        with self.autocast():
            logp = response_logp(self.policy, tokens, self.prompt_len, pads)
        if old_logp is None:  # train_tokens_per_s: the old policy is the current one
            old_logp = logp.detach()
        loss = grpo_loss(logp, old_logp, ref_logp, adv, mask, c.clip, c.beta)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.policy.parameters(), c.max_grad_norm)
        self.opt.step()
        return loss

    def grpo_step(self):
        c = self.c
        tokens, old_logp = self.rollout()
        ref_logp = self.reference_logp(tokens)
        # Stand-in reward: 1 if the last token of the response is even, else 0.
        rewards = (tokens[:, -1] % 2 == 0).float()
        adv_row = group_advantages(rewards, c.group_size)
        mask = torch.ones_like(old_logp)
        adv = adv_row[:, None] * mask
        n = tokens.shape[0]
        order = torch.randperm(n, generator=self.shuffle).to(self.device)
        size = -(-n // c.minibatches)
        for rows in order.split(size):
            self.update(rows, tokens, old_logp, ref_logp, adv, mask)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or "cpu"


def timed(fn, sync, repeats: int) -> list[float]:
    fn()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def flops_per_trained_token(c: BenchConfig, non_embedding: int, attended: float) -> float:
    """Forward: 2 * (non-embedding parameters) per token (2 per weight of every matrix the
    token passes through; the embeddings are look-ups) + the attention scores and weighted sum,
    2 * 2 * layers * attended * d_model, where `attended` is the number of positions a token
    attends to; forward + backward is three times the forward."""
    forward = 2 * non_embedding + 2 * 2 * c.layers * attended * c.d_model
    return 3.0 * forward


# ---------------------------------------------------------------------------------------------
# Correctness check.


def check(c: BenchConfig, device: torch.device, seed: int) -> bool:
    """Same weights: the log-probabilities recorded while sampling with the KV cache must match
    a full forward pass (max abs diff < 1e-4), with left padding in the batch. Also checks the
    parameter count against model.rs's formula and the pieces of the loss."""
    torch.manual_seed(seed)
    model = Gpt(c).to(device).eval()
    ok = True
    total, _ = parameter_counts(model)
    want = rust_parameter_count(c)
    print(f"[check] parameters: torch {total:,}, GptConfig::parameters {want:,}: "
          f"{'ok' if total == want else 'MISMATCH'}")
    ok &= total == want
    # Prompts of different lengths: left padding is exercised.
    texts = addition_prompts(3) + countdown_prompts(3) + ["7+5=", "123+4567="]
    prompts, pads = left_pad([encode(t) for t in texts], device)
    p = prompts.shape[1]
    r = min(c.max_new_tokens, c.context - p)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    tokens, logp_cache = generate(model, prompts, pads, r, generator=gen)
    with torch.no_grad():
        logp_full = response_logp(model, tokens, p, pads)
    diff = (logp_cache - logp_full).abs().max().item()
    print(f"[check] KV-cache sampling vs full forward, {tokens.shape[0]} rows (pads "
          f"{pads.tolist()}), P={p}, R={r}: max |logp diff| = {diff:.3e} "
          f"{'ok' if diff < 1e-4 else 'FAIL'}")
    ok &= diff < 1e-4
    # A padded row must give the same log-probabilities as the same row without padding.
    solo_p, solo_pads = left_pad([encode(texts[6])], device)
    solo_tokens = torch.cat([solo_p, tokens[6:7, p:]], dim=1)
    with torch.no_grad():
        solo = response_logp(model, solo_tokens, solo_p.shape[1], solo_pads)
    d2 = (solo - logp_full[6:7]).abs().max().item()
    print(f"[check] row with {pads[6].item()} pads vs the same row alone: max |diff| = "
          f"{d2:.3e} {'ok' if d2 < 1e-4 else 'FAIL'}")
    ok &= d2 < 1e-4
    # The loss at ratio 1 with beta 0 is -mean advantage (response-mean); k3 is 0 at ref=logp.
    adv = torch.randn(tokens.shape[0], 1, device=device).expand(-1, r)
    mask = torch.ones_like(logp_full)
    loss = grpo_loss(logp_full, logp_full, logp_full, adv, mask, 0.2, 0.04).item()
    want_loss = -adv[:, 0].mean().item()
    d3 = abs(loss - want_loss)
    print(f"[check] GRPO loss at ratio 1: {loss:.6f} vs -mean(adv) {want_loss:.6f} "
          f"{'ok' if d3 < 1e-5 else 'FAIL'}")
    ok &= d3 < 1e-5
    a = group_advantages(torch.tensor([1.0, 0, 0, 1, 1, 1, 1, 1]), 4)
    want_a = torch.tensor([0.5 / (math.sqrt(1 / 3) + 1e-4)] + [-0.5 / (math.sqrt(1 / 3) + 1e-4)] * 2
                          + [0.5 / (math.sqrt(1 / 3) + 1e-4)] + [0.0] * 4)
    d4 = (a - want_a).abs().max().item()
    print(f"[check] group advantages: max |diff| = {d4:.3e} {'ok' if d4 < 1e-6 else 'FAIL'}")
    ok &= d4 < 1e-6
    return ok


# ---------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="cpu",
                    help="cpu: configs/addition-cpu.toml; gpu: configs/countdown-gpu.toml")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32",
                    help="bf16: torch.autocast to bfloat16 (weights and optimizer stay f32)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch.set_num_threads (default: PyTorch's own choice)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs after one warm-up")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help="peak TFLOP/s of the device, to report the MFU of the training step")
    ap.add_argument("--attention-flops", choices=["half", "full"], default="half",
                    help="attention FLOPs per token over (P+R)/2 attended positions (the "
                         "causal average, as course/src/bench.rs) or over all P+R")
    ap.add_argument("--check", action="store_true",
                    help="run the correctness checks only (KV cache vs full forward, ...)")
    ap.add_argument("--weights", metavar="DIR",
                    help="with --greedy: load a Rust checkpoint folder (model.toml, "
                         "model.safetensors) and print greedy responses, to compare with "
                         "`zero-to-r1 lm eval --show`")
    ap.add_argument("--greedy", metavar="PROMPTS",
                    help="prompts separated by ';' (e.g. '11+61=;08+08=')")
    ap.add_argument("--only", default="rollout,train,grpo",
                    help="comma-separated subset of rollout,train,grpo to time")
    # Overrides for quick smoke runs (defaults: the config's own sizes).
    ap.add_argument("--prompts", type=int, help="override B")
    ap.add_argument("--group-size", type=int, help="override G")
    ap.add_argument("--new-tokens", type=int, help="override max_new_tokens")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available to this PyTorch", file=sys.stderr)
        return 2
    c = CONFIGS[args.config]
    if args.prompts:
        c.prompts = args.prompts
    if args.group_size:
        c.group_size = args.group_size
    if args.new_tokens:
        c.max_new_tokens = args.new_tokens

    if args.weights:
        model = load_rust_checkpoint(args.weights, device).eval()
        texts = (args.greedy or "47+85=").split(";")
        prompts, pads = left_pad([encode(t) for t in texts], device)
        r = min(c.max_new_tokens, model.config.context - prompts.shape[1])
        tokens, _ = generate(model, prompts, pads, r, temperature=0.0)
        for t, row in zip(texts, tokens[:, prompts.shape[1]:].tolist()):
            print(f"{t}  {decode_response(row)}")
        return 0

    if args.check:
        ok = check(c, device, args.seed)
        print("[check] all ok" if ok else "[check] FAILED")
        return 0 if ok else 1

    bench = Bench(c, device, args.dtype, args.seed)
    total, non_emb = parameter_counts(bench.policy)
    if total != rust_parameter_count(c):
        print(f"parameter count {total} differs from GptConfig::parameters "
              f"{rust_parameter_count(c)}", file=sys.stderr)
        return 1
    n = c.prompts * c.group_size
    p, r = bench.prompt_len, bench.new_tokens
    seq = p + r
    only = set(args.only.split(","))
    print(f"pytorch-eager {torch.__version__} on {device} ({args.dtype}), threads "
          f"{torch.get_num_threads()}: config {c.name}, {total:,} parameters, "
          f"batch {c.prompts}x{c.group_size}={n}, P={p}, R={r}")

    results: dict = {}
    if "rollout" in only:
        ts = timed(bench.rollout, bench.sync, args.repeats)
        results["rollout_s"] = statistics.median(ts)
        results["rollout_tokens_per_s"] = n * r / results["rollout_s"]

    # A fixed batch for the training measurement: one rollout, frozen reference log-probs,
    # random advantages (one per response), every response token real.
    tokens, _ = bench.rollout()
    ref_logp = bench.reference_logp(tokens)
    adv = torch.randn(n, 1, device=device).expand(n, r).contiguous()
    mask = torch.ones(n, r, device=device)
    if "train" in only:
        ts = timed(lambda: bench.update(None, tokens, None, ref_logp, adv, mask), bench.sync,
                   args.repeats)
        results["train_s"] = statistics.median(ts)
        results["train_tokens_per_s"] = n * seq / results["train_s"]
        # course/src/bench.rs counts the positions a token attends to on average under the causal
        # mask, (P + R) / 2; --attention-flops full counts all P + R.
        attended = seq if args.attention_flops == "full" else seq / 2
        fpt = flops_per_trained_token(c, non_emb, attended)
        results["train_flops_per_token"] = fpt
        results["train_tflops_achieved"] = fpt * results["train_tokens_per_s"] / 1e12
        if args.peak_tflops:
            results["mfu"] = results["train_tflops_achieved"] / args.peak_tflops
    if "grpo" in only:
        ts = timed(bench.grpo_step, bench.sync, args.repeats)
        results["grpo_step_s"] = statistics.median(ts)

    out = {
        "implementation": "pytorch-eager",
        "torch_version": torch.__version__,
        "device": device.type,
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                        else cpu_name()),
        "threads": torch.get_num_threads(),
        "dtype": args.dtype,
        "config": args.config,
        "parameters": total,
        "batch": n,
        "prompt_len": p,
        "new_tokens": r,
        "repeats": args.repeats,
        "rollout_tokens_per_s": results.get("rollout_tokens_per_s"),
        "train_tokens_per_s": results.get("train_tokens_per_s"),
        "grpo_step_s": results.get("grpo_step_s"),
        "train_flops_per_token": results.get("train_flops_per_token"),
        "train_tflops_achieved": results.get("train_tflops_achieved"),
        "rollout_s": results.get("rollout_s"),
        "train_s": results.get("train_s"),
    }
    if "mfu" in results:
        out["mfu"] = results["mfu"]
    rows = [
        ("rollout", "tokens/s", out["rollout_tokens_per_s"]),
        ("train step", "tokens/s", out["train_tokens_per_s"]),
        ("train step", "TFLOP/s", out["train_tflops_achieved"]),
        ("GRPO step", "seconds", out["grpo_step_s"]),
    ]
    if "mfu" in out:
        rows.append(("train step", "MFU", out["mfu"]))
    print(f"{'measurement':<12} {'unit':<9} {'median of ' + str(args.repeats):>14}")
    for name, unit, v in rows:
        if v is not None:
            print(f"{name:<12} {unit:<9} {v:>14.4g}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
