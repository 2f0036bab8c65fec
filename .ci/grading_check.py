#!/usr/bin/env python3
"""Proof that the grading tests grade.

1. A handout of every chapter compiles, and every grading test fails on its stubs.
2. The instructor's copy (every exercise solved) passes every grading test.
3. Deliberately wrong solutions are caught: each mutant below is applied to the instructor's
   copy in turn, and some grading test of its exercise must fail.

Usage: grading_check.py ZERO_TO_R1_BINARY   (run from the repository root)

Everything happens in one copy, rewritten in place (stubs, then solutions, then each mutant),
with a build folder of its own: cargo identifies a workspace's crates by their path inside
the workspace, so two copies sharing one build folder could be mistaken for each other.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

# (exercise, file, correct text, wrong text, what the mistake is)
MUTANTS = [
    ("2.2", "src/advantage.rs", "row[t] + gamma * g", "row[t] + g",
     "reward-to-go that ignores γ"),
    ("2.3", "src/objective.rs", "let per_step = (advantages.detach() * logp)?.neg()?;",
     "let per_step = (advantages.detach() * logp)?;", "REINFORCE loss without the minus sign"),
    ("3.1", "src/advantage.rs", "out[[i, k]] = (sum - returns[[i, k]]) / (count - 1.0);",
     "out[[i, k]] = sum / count;", "a mean baseline that includes the episode itself"),
    ("4.1", "src/advantage.rs", "bootstrap(terminated[i], last_values[i])", "last_values[i]",
     "TD errors that bootstrap after the meat (GAE without the terminal mask)"),
    ("4.2", "src/advantage.rs", "delta[[i, t]] + gamma * lambda * running",
     "delta[[i, t]] + lambda * running", "GAE that forgets γ in the decay"),
    ("5.1", "src/objective.rs", "unclipped.minimum(&clipped)?.neg()",
     "unclipped.maximum(&clipped)?.neg()", "an optimistic (max instead of min) clipped surrogate"),
    ("5.2", "src/objective.rs", "(log_ratio.exp()? - 1.0)? - log_ratio",
     "(log_ratio.neg()?.exp()? - 1.0)? + log_ratio", "k3 with the ratio inverted"),
    ("6.1", "src/advantage.rs", "/ (n - 1.0)).sqrt()", "/ n).sqrt()",
     "group standard deviation without n − 1"),
    ("6.2", "src/objective.rs", "k3(&(ref_logp.detach() - logp)?)",
     "k3(&(logp - ref_logp.detach())?)", "KL to the reference with the ratio inverted"),
    ("7.1", "src/objective.rs", "masked.sum(1)?.div(&lengths)?.sum_all()? / responses",
     "masked.sum_all()? / responses", "response-mean that forgets each response's length"),
    ("7.2", "src/objective.rs", "masked.sum_all()? / (responses * budget as f64)",
     "masked.sum_all()? / budget as f64", "the constant normaliser without the number of responses"),
    ("8.1", "src/lm/generate.rs", ".narrow(1, prompt_len - 1, r)?", ".narrow(1, prompt_len, r)?",
     "response log-probs read from logits that are not shifted by one token"),
    ("9.1", "src/lm/grpo/batch.rs", "group_advantages(rewards, group_size, scale_by_std)?",
     "group_advantages(rewards, group_size, true)?", "token advantages that always divide by the std"),
    ("9.2", "src/update.rs", "old_logp: &part.old_logp,\n        ref_logp: &part.ref_logp,",
     "old_logp: &part.ref_logp,\n        ref_logp: &part.old_logp,",
     "a GRPO loss with the old and reference log-probs swapped"),
    ("9.3", "src/objective.rs", "        .sum_keepdim(1)?\n        .div(&lengths)?\n",
     "        .sum_keepdim(1)?\n", "GSPO's log-ratio summed over the tokens instead of averaged"),
]


def run(cmd, **kw):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def main():
    binary = os.path.abspath(sys.argv[1])
    tmp = tempfile.mkdtemp(prefix="z2r1-grading-")
    os.environ["CARGO_TARGET_DIR"] = os.path.join(tmp, "target")
    work, solutions = os.path.join(tmp, "handout"), os.path.join(tmp, "solutions")
    try:
        t0 = time.time()
        run([binary, "handout", "--chapters", "all", "--out", work])
        run([binary, "handout", "--chapters", "all", "--out", solutions, "--with-solutions"])
        # What grading builds: the library and its tests (the course crate is not graded).
        run(["cargo", "build", "--quiet", "-p", "zero-to-r1", "--all-targets"], cwd=work)
        run([binary, "grade", "--dir", work, "--expect", "fail"])
        # The same folder with the solutions written over the stubs (newer files: rebuilt).
        for root, _, files in os.walk(solutions):
            for name in files:
                src = os.path.join(root, name)
                dst = os.path.join(work, os.path.relpath(src, solutions))
                with open(src, "rb") as f, open(dst, "wb") as g:
                    g.write(f.read())
        run([binary, "grade", "--dir", work, "--expect", "pass"])
        solutions = work
        print(f"handouts built and graded in {time.time() - t0:.0f} s", flush=True)
        for exercise, rel, good, bad, what in MUTANTS:
            t1 = time.time()
            path = os.path.join(solutions, rel)
            with open(path, encoding="utf-8") as f:
                text = f.read()
            if text.count(good) != 1:
                sys.exit(f"mutant for {exercise}: `{good}` must occur exactly once in {rel}")
            with open(path, "w", encoding="utf-8") as f:
                f.write(text.replace(good, bad))
            try:
                print(f"mutant {exercise}: {what}", flush=True)
                chapter = exercise.split(".")[0]
                run([binary, "grade", "--dir", solutions, "--chapters", chapter,
                     "--expect", f"caught={exercise}"])
            finally:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
            print(f"mutant {exercise} caught in {time.time() - t1:.0f} s", flush=True)
        print(f"grading check passed in {time.time() - t0:.0f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
