#!/usr/bin/env python3
"""The cat's house, PPO and GRPO in plain Python + PyTorch (CPU), for benchmarks.

The same house (``gridworld/src/house.rs``: the seeds' map), the same dynamics
(``gridworld/src/env.rs``: floor 0, broom -1, bathtub -10, meat +100 and the end of the
episode, optional slipping sideways, a step limit of 100), and PPO and GRPO with the defaults
of ``src/algo/ppo.rs`` (``PpoConfig::default()``) and ``src/algo/grpo.rs``
(``GrpoConfig::grpo()``): tabular softmax policies held in a ``torch`` parameter, a tabular
critic for PPO, GAE, clipping, Adam. Written the way a Python user would write it: an
environment class stepped one move at a time in a Python loop, episodes padded into tensors,
``torch.optim.Adam``.

Measured:

* ``env_steps_per_s``: the random cat (uniform policy, its sampling included), whole episodes
  until at least ``--env-steps`` steps, steps / seconds.
* ``ppo_time_to_solve_s`` / ``ppo_iterations_to_solve`` and the same for GRPO: the wall time
  from the start of training (everything included: rollouts, updates, the exact checks) to the
  end of the first iteration k (1-based) whose rollout policy - the policy after k - 1 updates,
  the one that collected iteration k's episodes - reaches the meat within the step limit with
  probability >= 0.95 from every start cell. That probability is computed exactly with numpy
  by propagating the policy through the house step by step over the step limit (as
  ``src/exact.rs``), at every iteration. ``course/src/bench.rs`` uses the same definition.

Run ``python benches/torch_cat.py --help``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import math
import random
import statistics
import sys
import time

import numpy as np
import torch

# ---------------------------------------------------------------------------------------------
# The house (gridworld/src/house.rs).

SEED_MAP = """\
#########
#C..#...#
#.#.B.#.#
#.T...T.#
#.#.#.#M#
#...B...#
#########
"""

FLOOR, WALL, BROOM, BATHTUB, MEAT = ".", "#", "B", "T", "M"
UP, DOWN, LEFT, RIGHT = 0, 1, 2, 3
DELTAS = [(-1, 0), (1, 0), (0, -1), (0, 1)]
SIDEWAYS = [(LEFT, RIGHT), (LEFT, RIGHT), (UP, DOWN), (UP, DOWN)]


class House:
    """A rectangle of cells (row-major, index = row * cols + col) and the start cells."""

    def __init__(self, text: str):
        lines = [line.rstrip("\r") for line in text.split("\n")]
        while lines and not lines[0].strip():
            lines.pop(0)
        while lines and not lines[-1].strip():
            lines.pop()
        if not lines:
            raise ValueError("the map is empty")
        self.rows, self.cols = len(lines), len(lines[0])
        self.cells: list[str] = []
        self.starts: list[int] = []
        for r, line in enumerate(lines):
            if len(line) != self.cols:
                raise ValueError(f"line {r + 1} has {len(line)} cells, the first has {self.cols}")
            for ch in line:
                if ch == "C":
                    self.starts.append(len(self.cells))
                    ch = FLOOR
                if ch not in (FLOOR, WALL, BROOM, BATHTUB, MEAT):
                    raise ValueError(f"unknown cell {ch!r} on line {r + 1}")
                self.cells.append(ch)
        if not self.starts:
            raise ValueError("no start cell 'C'")
        if MEAT not in self.cells:
            raise ValueError("no meat 'M'")

    @property
    def n(self) -> int:
        return self.rows * self.cols

    def move(self, cell: int, action: int) -> int:
        """The neighbouring cell, or `cell` itself if the move hits a wall or leaves the house."""
        r, c = divmod(cell, self.cols)
        dr, dc = DELTAS[action]
        nr, nc = r + dr, c + dc
        if not (0 <= nr < self.rows and 0 <= nc < self.cols):
            return cell
        to = nr * self.cols + nc
        return cell if self.cells[to] == WALL else to


REWARDS = {FLOOR: 0.0, WALL: 0.0, BROOM: -1.0, BATHTUB: -10.0, MEAT: 100.0}


class CatEnv:
    """The cat's house as an environment (gridworld/src/env.rs, default EnvConfig)."""

    def __init__(self, house: House, slip: float = 0.0, max_steps: int = 100):
        self.house, self.slip, self.max_steps = house, slip, max_steps
        self.state, self.t = house.starts[0], 0

    def reset(self, rng: random.Random, start: int | None = None) -> int:
        self.state = rng.choice(self.house.starts) if start is None else start
        self.t = 0
        return self.state

    def step(self, action: int, rng: random.Random):
        """(next state, reward, terminated, truncated)."""
        if self.slip > 0.0 and rng.random() < self.slip:
            action = SIDEWAYS[action][rng.randrange(2)]
        self.state = self.house.move(self.state, action)
        self.t += 1
        cell = self.house.cells[self.state]
        terminated = cell == MEAT
        truncated = not terminated and self.t >= self.max_steps
        return self.state, REWARDS[cell], terminated, truncated


# ---------------------------------------------------------------------------------------------
# Exact success probability (src/exact.rs, gridworld/src/mdp.rs), with numpy.


class ExactSuccess:
    """P(reach the meat within the step limit | start cell) of a tabular policy, exactly:
    V_0 = 0, V_k(s) = sum_a pi(a|s) sum_s' P(s'|s,a) (1[s' is meat] + V_{k-1}(s')), with walls
    and meat absorbing (value 0); the answer is V_H at each start cell, H the step limit."""

    def __init__(self, env: CatEnv):
        h = env.house
        n = h.n
        self.absorbing = np.array([c in (WALL, MEAT) for c in h.cells])
        p = np.zeros((n, 4, n))
        for s in range(n):
            if self.absorbing[s]:
                continue
            for a in range(4):
                left, right = SIDEWAYS[a]
                for taken, q in ((a, 1.0 - env.slip), (left, env.slip / 2), (right, env.slip / 2)):
                    if q > 0.0:
                        p[s, a, h.move(s, taken)] += q
        self.p = p
        meat = np.array([c == MEAT for c in h.cells], dtype=float)
        self.meat_next = p @ meat  # (S, 4): P(the move lands on meat)
        self.horizon = env.max_steps
        self.starts = h.starts

    def per_start(self, policy: np.ndarray) -> np.ndarray:
        v = np.zeros(self.p.shape[0])
        for _ in range(self.horizon):
            v = (policy * (self.meat_next + self.p @ v)).sum(axis=1)
            v[self.absorbing] = 0.0
        return v[self.starts]


# ---------------------------------------------------------------------------------------------
# Rollouts.



def snapshot(logits, exact):
    """pi_old as a tensor and as Python rows, and its exact worst-start success probability."""
    with torch.no_grad():
        table = torch.softmax(logits, dim=-1)
    return table, table.tolist(), float(exact.per_start(table.numpy()).min())

def sample_action(probs: list[float], rng: random.Random) -> int:
    """Inverts the cumulative distribution of one row of the policy with one uniform number."""
    u = rng.random()
    acc = 0.0
    for i, p in enumerate(probs):
        acc += p
        if u < acc:
            return i
    return max(i for i, p in enumerate(probs) if p > 0.0)


class Episode:
    __slots__ = ("states", "actions", "rewards", "last_state", "terminated")

    def __init__(self):
        self.states: list[int] = []
        self.actions: list[int] = []
        self.rewards: list[float] = []
        self.last_state = 0
        self.terminated = False


def run_episode(env: CatEnv, policy, rng: random.Random, start: int | None = None,
                sampler: str = "table", logits=None) -> Episode:
    """One episode, one Python step at a time. sampler "table": `policy` is a list of rows of
    probabilities (the softmax of the logits, computed once per iteration); sampler "torch":
    each step draws from torch.distributions.Categorical(logits=logits[s])."""
    ep = Episode()
    s = env.reset(rng, start)
    while True:
        if sampler == "table":
            a = sample_action(policy[s], rng)
        else:
            with torch.no_grad():
                a = int(torch.distributions.Categorical(logits=logits[s]).sample())
        s2, r, terminated, truncated = env.step(a, rng)
        ep.states.append(s)
        ep.actions.append(a)
        ep.rewards.append(r)
        s = s2
        if terminated or truncated:
            ep.last_state, ep.terminated = s, terminated
            return ep


def pad(episodes: list[Episode], per_step: list[list[float]] | None = None):
    """(states, actions, mask[, values]) as (B, T) tensors padded with zeros."""
    b = len(episodes)
    t = max(len(e.states) for e in episodes)
    states = torch.zeros(b, t, dtype=torch.long)
    actions = torch.zeros(b, t, dtype=torch.long)
    mask = torch.zeros(b, t, dtype=torch.float64)
    extra = torch.zeros(b, t, dtype=torch.float64) if per_step is not None else None
    for i, e in enumerate(episodes):
        n = len(e.states)
        states[i, :n] = torch.tensor(e.states)
        actions[i, :n] = torch.tensor(e.actions)
        mask[i, :n] = 1.0
        if per_step is not None:
            extra[i, :n] = torch.tensor(per_step[i], dtype=torch.float64)
    return states, actions, mask, extra


def log_probs(logits, states, actions):
    return torch.log_softmax(logits[states], dim=-1).gather(-1, actions[..., None]).squeeze(-1)


def step_mean(x, mask):
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def clipped_surrogate(logp, old_logp, adv, clip):
    ratio = torch.exp(logp - old_logp)
    return -torch.minimum(ratio * adv, ratio.clamp(1.0 - clip, 1.0 + clip) * adv)


# ---------------------------------------------------------------------------------------------
# PPO (src/algo/ppo.rs, PpoConfig::default()).

PPO = dict(episodes_per_iteration=16, epochs=4, minibatches=4, clip=0.2, lr=0.01, value_lr=0.5,
           gamma=1.0, lam=0.95, normalize_advantages=True, max_grad_norm=1.0)


def gae(ep: Episode, v: list[float], gamma: float, lam: float):
    """GAE(gamma, lambda) advantages and value targets of one episode; after the last step the
    next value is 0 if it terminated and V(s_T) if the step limit cut it off."""
    n = len(ep.states)
    values = [v[s] for s in ep.states]
    adv = [0.0] * n
    running = 0.0
    for t in reversed(range(n)):
        if t + 1 < n:
            nxt = values[t + 1]
        else:
            nxt = 0.0 if ep.terminated else v[ep.last_state]
        delta = ep.rewards[t] + gamma * nxt - values[t]
        running = delta + gamma * lam * running
        adv[t] = running
    return adv, [a + x for a, x in zip(adv, values)]


def normalize(adv, mask):
    """Mean 0, standard deviation 1 (n - 1) over the real steps; only the mean is removed when
    there is no spread."""
    n = mask.sum()
    if n < 1:
        return adv
    mean = (adv * mask).sum() / n
    var = (((adv - mean) ** 2) * mask).sum() / (n - 1) if n > 1 else torch.tensor(0.0)
    sd = math.sqrt(float(var))
    scale = 1.0 / sd if sd > 1e-12 else 1.0
    return (adv - mean) * scale * mask


def train_ppo(env: CatEnv, exact: ExactSuccess, seed: int, max_iterations: int,
              sampler: str, target: float = 0.95, log=None):
    c = PPO
    n = env.house.n
    torch.manual_seed(seed)
    rng = random.Random(seed)
    shuffle_rng = random.Random(seed + 1)
    logits = torch.zeros(n, 4, dtype=torch.float64, requires_grad=True)
    values = torch.zeros(n, dtype=torch.float64, requires_grad=True)
    actor_opt = torch.optim.Adam([logits], lr=c["lr"])
    critic_opt = torch.optim.Adam([values], lr=c["value_lr"])
    started = time.perf_counter()
    for it in range(max_iterations):
        # 1. Roll out pi_old, and check it exactly.
        table, rows, success = snapshot(logits, exact)
        episodes = [run_episode(env, rows, rng, sampler=sampler, logits=logits)
                    for _ in range(c["episodes_per_iteration"])]
        # 2. GAE(gamma, lambda) with the critic as it was.
        v = values.detach().tolist()
        adv_rows, target_rows = zip(*(gae(e, v, c["gamma"], c["lam"]) for e in episodes))
        states, actions, mask, adv = pad(episodes, list(adv_rows))
        targets = pad(episodes, list(target_rows))[3]
        with torch.no_grad():
            old_logp = log_probs(logits, states, actions) * mask
        # 3. Epochs of shuffled minibatches.
        b = len(episodes)
        size = -(-b // c["minibatches"])
        for _ in range(c["epochs"]):
            order = list(range(b))
            shuffle_rng.shuffle(order)
            for k in range(0, b, size):
                idx = torch.tensor(order[k:k + size])
                s, a, m = states[idx], actions[idx], mask[idx]
                mb_adv = normalize(adv[idx], m) if c["normalize_advantages"] else adv[idx]
                logp = log_probs(logits, s, a)
                actor_loss = step_mean(clipped_surrogate(logp, old_logp[idx], mb_adv, c["clip"]), m)
                critic_loss = step_mean(0.5 * (values[s] - targets[idx]) ** 2, m)
                actor_opt.zero_grad()
                actor_loss.backward()
                torch.nn.utils.clip_grad_norm_([logits], c["max_grad_norm"])
                actor_opt.step()
                critic_opt.zero_grad()
                critic_loss.backward()
                critic_opt.step()
        if log:
            log("ppo", it, success, episodes)
        if success >= target:
            return time.perf_counter() - started, it + 1, success
    return None, None, success


# ---------------------------------------------------------------------------------------------
# GRPO (src/algo/grpo.rs, GrpoConfig::grpo()).

GRPO = dict(questions_per_iteration=2, group_size=8, epochs=4, clip=0.2, beta=0.0, lr=0.03,
            max_grad_norm=1.0, eps=1e-4)


def group_advantages(rewards: list[float], g: int, eps: float) -> list[float]:
    """(r - mean) / (std + eps) within each group (unbiased std); equal rewards give 0."""
    out = []
    for k in range(0, len(rewards), g):
        group = rewards[k:k + g]
        if all(r == group[0] for r in group):
            out += [0.0] * g
            continue
        mean = sum(group) / g
        std = math.sqrt(sum((r - mean) ** 2 for r in group) / (g - 1))
        out += [(r - mean) / (std + eps) for r in group]
    return out


def train_grpo(env: CatEnv, exact: ExactSuccess, seed: int, max_iterations: int,
               sampler: str, target: float = 0.95, log=None):
    c = GRPO
    n, g = env.house.n, c["group_size"]
    torch.manual_seed(seed)
    rng = random.Random(seed)
    question_rng = random.Random(seed + 2)
    logits = torch.zeros(n, 4, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        ref_table = torch.softmax(logits, dim=-1)  # the frozen reference: the policy at start
    opt = torch.optim.Adam([logits], lr=c["lr"])
    started = time.perf_counter()
    for it in range(max_iterations):
        # 1. Questions (start cells) and a group of G answers (episodes) to each from pi_old.
        table, rows, success = snapshot(logits, exact)
        questions = [question_rng.choice(env.house.starts)
                     for _ in range(c["questions_per_iteration"])]
        episodes = [run_episode(env, rows, rng, start=q, sampler=sampler, logits=logits)
                    for q in questions for _ in range(g)]
        # 2. One outcome reward per episode (its return), scored against its group.
        rewards = [sum(e.rewards) for e in episodes]
        adv_rows = group_advantages(rewards, g, c["eps"])
        states, actions, mask, _ = pad(episodes)
        adv = torch.tensor(adv_rows, dtype=torch.float64)[:, None] * mask
        with torch.no_grad():
            old_logp = log_probs(logits, states, actions) * mask
            ref_logp = torch.log(ref_table[states].gather(-1, actions[..., None]).squeeze(-1))
        lengths = mask.sum(1).clamp(min=1.0)
        # 3. mu gradient steps on the whole batch: clipped surrogate (+ beta k3), response-mean.
        for _ in range(c["epochs"]):
            logp = log_probs(logits, states, actions)
            per_step = clipped_surrogate(logp, old_logp, adv, c["clip"])
            if c["beta"] != 0.0:
                x = ref_logp - logp
                per_step = per_step + c["beta"] * (torch.exp(x) - 1.0 - x)
            loss = ((per_step * mask).sum(1) / lengths).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_([logits], c["max_grad_norm"])
            opt.step()
        if log:
            log("grpo", it, success, episodes)
        if success >= target:
            return time.perf_counter() - started, it + 1, success
    return None, None, success


# ---------------------------------------------------------------------------------------------


def env_steps_per_s(env: CatEnv, steps: int, seed: int, sampler: str) -> tuple[float, int]:
    """The random cat: whole episodes until at least `steps` steps; (steps / second, steps)."""
    rng = random.Random(seed)
    uniform = [[0.25] * 4 for _ in range(env.house.n)]
    logits = torch.zeros(env.house.n, 4, dtype=torch.float64)
    done = 0
    t0 = time.perf_counter()
    while done < steps:
        done += len(run_episode(env, uniform, rng, sampler=sampler, logits=logits).states)
    return done / (time.perf_counter() - t0), done


def check(env: CatEnv, exact: ExactSuccess, episodes: int, seed: int) -> bool:
    """The exact success probability against a Monte Carlo estimate (within 4 standard
    errors): the random cat, and a cat that prefers down and right, with and without slipping
    (the only case where slipping changes anything)."""
    ok = True
    n = env.house.n
    biased = [0.1, 0.4, 0.1, 0.4]
    cases = [("random cat", [0.25] * 4, 0.0), ("down/right cat", biased, 0.0),
             ("down/right cat", biased, 0.2)]
    for name, row, slip in cases:
        e = CatEnv(env.house, slip=slip, max_steps=env.max_steps)
        p = float(ExactSuccess(e).per_start(np.tile(row, (n, 1))).min())
        rng = random.Random(seed)
        table = [row] * n
        hits = sum(run_episode(e, table, rng).terminated for _ in range(episodes))
        mc = hits / episodes
        se = math.sqrt(max(p * (1 - p), 1e-12) / episodes)
        good = abs(mc - p) < 4 * se
        ok &= good
        print(f"[check] {name}, slip {slip}: exact success {p:.6f}, Monte Carlo {mc:.6f} over "
              f"{episodes} episodes (4 SE = {4 * se:.4f}) {'ok' if good else 'FAIL'}")
    a = group_advantages([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0], 4, 1e-4)
    want = 0.5 / (math.sqrt(1 / 3) + 1e-4)
    good = max(abs(x - y) for x, y in zip(a, [want, -want, -want, want, 0, 0, 0, 0])) < 1e-12
    ok &= good
    print(f"[check] group advantages {'ok' if good else 'FAIL'}")
    return ok


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", type=int, default=1,
                    help="train with seeds seed, seed+1, ...; report each and the median")
    ap.add_argument("--max-iterations", type=int, default=60,
                    help="most iterations of PPO and of GRPO (course/src/bench.rs's default: 60)")
    ap.add_argument("--env-steps", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    ap.add_argument("--sampler", choices=["table", "torch"], default="table",
                    help="table: softmax once per iteration, each step samples from a Python "
                         "list (as the Rust side); torch: each step builds a "
                         "torch.distributions.Categorical")
    ap.add_argument("--slip", type=float, default=0.0)
    ap.add_argument("--algos", default="ppo,grpo")
    ap.add_argument("--verbose", action="store_true", help="one line per iteration")
    ap.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")
    ap.add_argument("--check", action="store_true",
                    help="check the exact success probability against Monte Carlo and stop")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    house = House(SEED_MAP)
    env = CatEnv(house, slip=args.slip)
    exact = ExactSuccess(env)
    random_cat = float(exact.per_start(np.full((house.n, 4), 0.25)).min())
    print(f"the seeds' house, {house.rows}x{house.cols}, starts {house.starts}; the random cat "
          f"reaches the meat within {env.max_steps} steps with probability {random_cat:.4f}")

    if args.check:
        ok = check(env, exact, 20_000, args.seed)
        print("[check] all ok" if ok else "[check] FAILED")
        return 0 if ok else 1

    rate, steps = env_steps_per_s(env, args.env_steps, args.seed, args.sampler)
    print(f"random cat: {rate:,.0f} environment steps/s ({steps} steps, sampler {args.sampler})")

    def log(algo, it, success, episodes):
        if args.verbose:
            mean_ret = sum(sum(e.rewards) for e in episodes) / len(episodes)
            print(f"  {algo} iteration {it + 1}: exact success {success:.4f}, "
                  f"mean return {mean_ret:.1f}")

    out = {
        "implementation": "python-pytorch",
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "sampler": args.sampler,
        "seed": args.seed,
        "runs": args.runs,
        "max_iterations": args.max_iterations,
        "env_steps": steps,
        "env_steps_per_s": rate,
        "random_cat_success": random_cat,
    }
    algos = {"ppo": train_ppo, "grpo": train_grpo}
    for name in args.algos.split(","):
        times, iters, finals = [], [], []
        for run in range(args.runs):
            seed = args.seed + run
            secs, k, p = algos[name](env, exact, seed, args.max_iterations, args.sampler, log=log)
            times.append(secs)
            iters.append(k)
            finals.append(p)
            if secs is None:
                print(f"{name.upper()} (seed {seed}): not solved within {args.max_iterations} "
                      f"iterations (last exact success {p:.4f})")
            else:
                print(f"{name.upper()} (seed {seed}): solved in {secs:.3f} s ({k} iterations, "
                      f"exact success {p:.4f})")
        solved_t = [t for t in times if t is not None]
        solved_k = [k for k in iters if k is not None]
        all_solved = len(solved_t) == len(times)
        out[f"{name}_time_to_solve_s"] = statistics.median(solved_t) if all_solved else None
        out[f"{name}_iterations_to_solve"] = (statistics.median(solved_k) if all_solved
                                              else None)
        if args.runs == 1 and all_solved:
            out[f"{name}_iterations_to_solve"] = solved_k[0]
        if args.runs > 1:
            out[f"{name}_time_to_solve_s_runs"] = times
            out[f"{name}_iterations_to_solve_runs"] = iters
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
