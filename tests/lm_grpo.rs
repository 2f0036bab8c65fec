//! GRPO on the language model: the optimizer, gradient accumulation, resuming, the NaN guard,
//! config errors, and a seeded run that learns.

mod common;

use candle_core::{Tensor, Var};
use candle_nn::{AdamW as CandleAdamW, Optimizer, ParamsAdamW};
use common::{device, model, tiny};
use zero_to_r1::lm::config::{Algo, LmConfig};
use zero_to_r1::lm::grpo::{self, GrpoStep, GrpoTrainer};
use zero_to_r1::lm::model::Gpt;
use zero_to_r1::lm::sft;
use zero_to_r1::objective::{aggregate, Aggregation, LossInputs};
use zero_to_r1::optim::AdamW;

/// A config for a tiny model on one-digit addition; `steps` GRPO steps.
fn tiny_config(steps: usize) -> LmConfig {
    let mut c = LmConfig::default();
    c.task.difficulty = 1;
    c.model = tiny();
    c.grpo.steps = steps;
    c.grpo.prompts = 4;
    c.grpo.group_size = 4;
    c.grpo.max_new_tokens = 24;
    c.grpo.eval_problems = 8;
    c.grpo.eval_every = 0;
    c.grpo.checkpoint_every = 0;
    c.grpo.warmup = 1;
    c.validate().unwrap();
    c
}

fn params(m: &Gpt) -> Vec<Vec<f32>> {
    m.vars()
        .iter()
        .map(|v| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
        .collect()
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("z2r1-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn adamw_first_step_by_hand() {
    // m̂ = g and v̂ = g² after one step, so θ moves by lr · sign(g) after the decay θ(1 − lr·λ).
    let var = Var::new(&[1.0f32, -2.0], &device()).unwrap();
    let mut opt = AdamW::new(vec![("w".into(), var.clone())], 0.1, 0.01).unwrap();
    let g = Tensor::new(&[0.5f32, -0.1], var.device()).unwrap();
    opt.step_grads(&[Some(g)]).unwrap();
    let got: Vec<f32> = var.as_tensor().to_vec1().unwrap();
    assert!((got[0] - (0.999 - 0.1)).abs() < 1e-6, "{got:?}");
    assert!((got[1] - (-1.998 + 0.1)).abs() < 1e-6, "{got:?}");
    assert_eq!(opt.steps, 1);
}

#[test]
fn adamw_matches_candles_adamw() {
    let (a, b) = (model(3), model(3));
    let mut ours = AdamW::new(a.named_vars(), 0.01, 0.1).unwrap();
    let params_b = ParamsAdamW {
        lr: 0.01,
        weight_decay: 0.1,
        ..ParamsAdamW::default()
    };
    let mut theirs = CandleAdamW::new(b.vars(), params_b).unwrap();
    for step in 0..4u64 {
        let grads: Vec<Tensor> = a
            .vars()
            .iter()
            .map(|v| {
                Tensor::randn(0f32, 1.0, v.shape(), v.device())
                    .unwrap()
                    .affine(1.0 + step as f64, 0.0)
                    .unwrap()
            })
            .collect();
        ours.step_grads(&grads.iter().cloned().map(Some).collect::<Vec<_>>())
            .unwrap();
        // The same gradients as a GradStore, through a loss whose gradient they are.
        let loss = b
            .vars()
            .iter()
            .zip(&grads)
            .map(|(v, g)| (v.as_tensor() * g).unwrap().sum_all().unwrap())
            .reduce(|x, y| (x + y).unwrap())
            .unwrap();
        theirs.backward_step(&loss).unwrap();
    }
    for (x, y) in params(&a).iter().zip(params(&b)) {
        for (p, q) in x.iter().zip(&y) {
            assert!((p - q).abs() < 1e-5, "{p} vs {q}");
        }
    }
}

#[test]
fn adamw_state_round_trips_and_bad_files_are_named() {
    // A saved and reloaded optimizer takes the same next step as the one that never stopped.
    let m = model(1);
    let ones = |m: &Gpt| -> Vec<Option<Tensor>> {
        m.vars()
            .iter()
            .map(|v| Some(v.as_tensor().ones_like().unwrap()))
            .collect()
    };
    let halves = |m: &Gpt| -> Vec<Option<Tensor>> {
        m.vars()
            .iter()
            .map(|v| Some((v.as_tensor().ones_like().unwrap() * -0.5).unwrap()))
            .collect()
    };
    let mut opt = AdamW::new(m.named_vars(), 0.01, 0.1).unwrap();
    opt.step_grads(&ones(&m)).unwrap();
    let dir = temp_dir("adamw");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("opt.safetensors");
    opt.save(&path).unwrap();
    let copy = m.copy().unwrap();
    let mut other = AdamW::new(copy.named_vars(), 0.01, 0.1).unwrap();
    other.load(&path, 1).unwrap();
    assert_eq!(other.steps, 1);
    opt.step_grads(&halves(&m)).unwrap();
    other.step_grads(&halves(&copy)).unwrap();
    assert_eq!(params(&m), params(&copy));
    std::fs::write(&path, b"not a safetensors file").unwrap();
    let err = other.load(&path, 1).unwrap_err().to_string();
    assert!(err.contains("opt.safetensors"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn shares_make_the_parts_of_a_batch_add_up_to_the_whole() {
    let x = Tensor::new(
        &[
            [1.0f32, 2.0, 3.0],
            [4.0, 5.0, 0.0],
            [-1.0, 0.0, 0.0],
            [2.0, 2.0, 2.0],
        ],
        &device(),
    )
    .unwrap();
    let mask = Tensor::new(
        &[
            [1.0f32, 1.0, 1.0],
            [1.0, 1.0, 0.0],
            [1.0, 0.0, 0.0],
            [1.0, 1.0, 1.0],
        ],
        &device(),
    )
    .unwrap();
    for how in [
        Aggregation::EpisodeSum,
        Aggregation::StepMean,
        Aggregation::ResponseMean,
        Aggregation::Constant { budget: 5 },
    ] {
        let whole: f32 = aggregate(&x, &mask, how).unwrap().to_scalar().unwrap();
        let mut sum = 0.0f64;
        for (start, len) in [(0, 1), (1, 3)] {
            let (px, pm) = (
                x.narrow(0, start, len).unwrap(),
                mask.narrow(0, start, len).unwrap(),
            );
            let steps: f32 = pm.sum_all().unwrap().to_scalar().unwrap();
            let part: f32 = aggregate(&px, &pm, how).unwrap().to_scalar().unwrap();
            sum += how.share(len, 4, steps as f64, 9.0) * part as f64;
        }
        assert!((sum - whole as f64).abs() < 1e-5, "{how}: {sum} vs {whole}");
    }
}

/// A tiny model fine-tuned for a few seconds on one-digit addition with many slips.
fn tiny_sft(seed: u64, steps: usize) -> (LmConfig, Gpt) {
    let mut c = tiny_config(20);
    c.data.slip_rate = 0.5;
    c.sft.steps = steps;
    c.sft.warmup = 10;
    c.sft.lr = 0.01;
    let task = c.task().unwrap();
    let m = Gpt::new(&c.model, seed, &device()).unwrap();
    sft::train(&m, task.as_ref(), 1, &c.data, &c.sft, seed, |_| {}).unwrap();
    (c, m)
}

#[test]
fn micro_batches_give_the_whole_batch_gradient() {
    let (mut c, m) = tiny_sft(2, 40);
    c.grpo.minibatches = 1;
    for how in ["response-mean", "token-mean", "constant:24"] {
        c.grpo.aggregation = how.parse().unwrap();
        c.grpo.micro_batch = 0;
        let mut whole = GrpoTrainer::new(m.copy().unwrap(), m.copy().unwrap(), &c, 5).unwrap();
        whole.step().unwrap();
        c.grpo.micro_batch = 3;
        let mut parts = GrpoTrainer::new(m.copy().unwrap(), m.copy().unwrap(), &c, 5).unwrap();
        parts.step().unwrap();
        for (x, y) in params(&whole.policy).iter().zip(params(&parts.policy)) {
            for (p, q) in x.iter().zip(&y) {
                assert!((p - q).abs() < 1e-5, "{how}: {p} vs {q}");
            }
        }
    }
}

#[test]
fn the_trainer_uses_the_shared_loss() {
    // The loss of a part, recomputed by hand from objective::grpo_loss on the same tensors.
    let (c, m) = tiny_sft(3, 40);
    let t = GrpoTrainer::new(m.copy().unwrap(), m, &c, 1).unwrap();
    let batch = t.rollout(0).unwrap();
    let part = batch.part(&[0, 1, 2, 3, 4]).unwrap();
    let settings = zero_to_r1::objective::LossSettings {
        clip: 0.2,
        beta: 0.04,
        aggregation: Aggregation::ResponseMean,
        ..Default::default()
    };
    let out = grpo::part_loss(&t.policy, &part, &settings, false).unwrap();
    let inputs = LossInputs {
        logp: &out.logp,
        old_logp: &part.old_logp,
        ref_logp: &part.ref_logp,
        advantages: &part.advantages,
        mask: &part.mask,
    };
    let expected = zero_to_r1::objective::grpo_loss(&inputs, &settings).unwrap();
    let (a, b): (f32, f32) = (out.loss.to_scalar().unwrap(), expected.to_scalar().unwrap());
    assert_eq!(a, b);
    // The advantages are the group advantages of the rewards on every real token.
    let rewards: Vec<f64> = batch.rewards.iter().map(|r| r.total).collect();
    let adv = zero_to_r1::advantage::group_advantages(&rewards, 4, true).unwrap();
    let grid: Vec<Vec<f32>> = batch.rows.advantages.to_vec2().unwrap();
    let mask: Vec<Vec<f32>> = batch.rows.mask.to_vec2().unwrap();
    for i in 0..rewards.len() {
        for t in 0..grid[i].len() {
            assert!((grid[i][t] as f64 - adv[i] * mask[i][t] as f64).abs() < 1e-6);
        }
    }
}

#[test]
fn grpo_raises_the_reward_of_a_tiny_model() {
    // Fine-tuned on traces of which half miss a tag, the tiny model leaves one out about half
    // the time; the format reward (and the accuracy reward, which needs the answer tags)
    // should teach it to stop.
    let mut c = tiny_config(30);
    c.data.slip_rate = 0.0;
    c.data.missing_tag_rate = 0.5;
    c.sft.steps = 100;
    c.sft.warmup = 10;
    c.sft.lr = 0.01;
    let task = c.task().unwrap();
    let m = Gpt::new(&c.model, 7, &device()).unwrap();
    sft::train(&m, task.as_ref(), 1, &c.data, &c.sft, 7, |_| {}).unwrap();
    c.reward.format = 1.0;
    c.grpo.lr = 3e-3;
    c.grpo.prompts = 8;
    c.grpo.group_size = 8;
    let mut t = GrpoTrainer::new(m.copy().unwrap(), m, &c, 7).unwrap();
    let log: Vec<GrpoStep> = (0..30).map(|_| t.step().unwrap()).collect();
    let mean =
        |s: &[GrpoStep], f: fn(&GrpoStep) -> f64| s.iter().map(f).sum::<f64>() / s.len() as f64;
    let (first, last) = (&log[..5], &log[log.len() - 5..]);
    let (r0, r1) = (mean(first, |s| s.reward), mean(last, |s| s.reward));
    let (f0, f1) = (
        mean(first, |s| s.format_rate),
        mean(last, |s| s.format_rate),
    );
    assert!(
        r1 > r0 + 0.2,
        "mean reward {r0:.3} → {r1:.3} (format {f0:.2} → {f1:.2})"
    );
}

#[test]
fn a_nan_stops_training_and_keeps_the_last_good_checkpoint() {
    // Traces that miss a tag half the time and a format reward: the first steps have
    // something to teach, so the last good checkpoint differs from the start.
    let (mut c, m) = common::format_learner(5);
    c.grpo.steps = 4;
    c.grpo.checkpoint_every = 1;
    let dir = temp_dir("nan");
    let mut t = GrpoTrainer::new(m.copy().unwrap(), m, &c, 1).unwrap();
    let start = params(&t.policy);
    grpo::train(&mut t, &dir, 2, |_: &GrpoStep| {}).unwrap();
    let good = params(&t.policy);
    assert!(good != start, "two steps did not move the policy");
    // A reference that has gone bad: every log-probability under it is NaN.
    for v in t.reference.vars() {
        let nan = (v.as_tensor().ones_like().unwrap() * f64::NAN).unwrap();
        v.set(&nan).unwrap();
    }
    let err = grpo::train(&mut t, &dir, 4, |_: &GrpoStep| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("step 2") && err.contains("loss") && err.contains("NaN"),
        "{err}"
    );
    assert!(
        params(&t.policy) == good,
        "the policy was updated with a NaN"
    );
    let latest = std::fs::read_to_string(dir.join(grpo::LATEST)).unwrap();
    assert_eq!(latest, "step-000002");
    let back = GrpoTrainer::resume(&dir, &device()).unwrap();
    assert!(params(&back.policy) == good);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_grpo_settings_name_the_key() {
    let cases = [
        ("[grpo]\ngroup_size = 1\n", "grpo.group_size"),
        ("[grpo]\naggregation = \"median\"\n", "grpo.aggregation"),
        ("[grpo]\ntemperature = 0.0\n", "grpo.temperature"),
        ("[grpo]\ntemperature = 0.7\n", "grpo.temperature"),
        ("[grpo]\nlr = -1.0\n", "grpo.lr"),
        ("[grpo]\nminibatches = 1000\n", "grpo.minibatches"),
        ("[grpo]\nbogus = 1\n", "bogus"),
    ];
    for (text, key) in cases {
        let err = LmConfig::from_toml(text, "test.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{text:?}: {err}");
    }
    let mut g = LmConfig::default().grpo;
    assert!("ppo"
        .parse::<Algo>()
        .unwrap_err()
        .to_string()
        .contains("--algo"));
    g.set_algo("dr-grpo".parse().unwrap());
    assert!(!g.scale_by_std);
    assert_eq!(
        g.aggregation.to_string(),
        format!("constant:{}", g.max_new_tokens)
    );
}

#[test]
fn a_corrupt_run_folder_is_a_clear_error() {
    let dir = temp_dir("corrupt");
    std::fs::create_dir_all(&dir).unwrap();
    let err = GrpoTrainer::resume(&dir, &device())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("config.toml"), "{err}");
    std::fs::write(
        dir.join("config.toml"),
        LmConfig::default().to_toml().unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join(grpo::LATEST), "../../etc").unwrap();
    let err = GrpoTrainer::resume(&dir, &device())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("LATEST"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn optimizer_steps_and_memory_estimates_by_hand() {
    // 16 responses cut into minibatches of ⌈16 / k⌉: k = 5 gives chunks of 4, so 4 steps.
    let mut g = LmConfig::default().grpo;
    (g.prompts, g.group_size) = (4, 4);
    for (minibatches, epochs, size, steps) in [
        (1, 1, 16, 1),
        (2, 1, 8, 2),
        (3, 1, 6, 3),
        (5, 2, 4, 8),
        (16, 1, 1, 16),
    ] {
        (g.minibatches, g.epochs) = (minibatches, epochs);
        assert_eq!(g.minibatch_size(16), size, "{minibatches}");
        assert_eq!(
            g.optimizer_steps_per_step(),
            steps,
            "{minibatches}, {epochs}"
        );
    }
    // A model of 281 parameters (V = 55, T = 4, d = 2, one block, one head, MLP 3):
    // 16 bytes each, plus 100 rows (eval.batch_size, the largest) of
    // T·(layers·(16d + 2·mlp + 2·heads·T) + 3V)·4 = 4·(46 + 165)·4 = 3376 bytes.
    let mut c = LmConfig {
        model: zero_to_r1::lm::model::GptConfig {
            vocab: 55,
            context: 4,
            d_model: 2,
            layers: 1,
            heads: 1,
            mlp: 3,
        },
        ..LmConfig::default()
    };
    assert_eq!(c.model.parameters(), 281);
    let (bytes, key) = c.memory_estimate();
    assert_eq!(
        (bytes, key),
        (16.0 * 281.0 + 100.0 * 3376.0, "eval.batch_size")
    );
    c.eval.batch_size = 10;
    assert_eq!(
        c.memory_estimate(),
        (16.0 * 281.0 + 64.0 * 3376.0, "grpo.micro_batch")
    );
}

#[test]
fn grpo_samples_only_at_temperature_one() {
    // The sampler records the model's own log-probabilities as log π_old; at another
    // temperature the responses would come from another distribution, so it is refused.
    for t in [0.5, 0.7, 1.5] {
        let text = format!("[grpo]\ntemperature = {t}\n");
        let err = LmConfig::from_toml(&text, "test.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("grpo.temperature") && err.contains("must be 1"),
            "{t}: {err}"
        );
    }
    assert!(LmConfig::from_toml("[grpo]\ntemperature = 1.0\n", "test.toml").is_ok());
}

#[test]
fn a_tiny_zero_run_learns_the_format_from_a_base_model() {
    use zero_to_r1::lm::config::Pretrain;
    use zero_to_r1::lm::data::DataConfig;
    use zero_to_r1::lm::task::Template;
    // A base model that writes R1's template in one document of four, asked with R1-Zero's
    // template (the prompt ends with <think>), and GRPO with no fine-tuning before it.
    let mut c = tiny_config(30);
    c.task.template = Template::Think;
    c.model.context = 48;
    c.grpo.prompts = 8;
    c.grpo.group_size = 8;
    c.grpo.lr = 3e-3;
    c.reward.format = 1.0;
    c.sft.steps = 0;
    let data = DataConfig {
        slip_rate: 0.0,
        missing_tag_rate: 0.0,
        template_rate: 0.25,
        ..DataConfig::default()
    };
    let pre = zero_to_r1::lm::sft::SftConfig {
        steps: 150,
        warmup: 10,
        lr: 0.01,
        ..Default::default()
    };
    c.pretrain = Some(Pretrain { data, sft: pre });
    c.validate().unwrap();
    let task = c.task().unwrap();
    let base = model(3);
    sft::train(&base, task.as_ref(), 1, &data, &pre, 3, |_| {}).unwrap();
    let mut trainer = GrpoTrainer::new(base.copy().unwrap(), base, &c, 3).unwrap();
    let log: Vec<GrpoStep> = (0..30).map(|_| trainer.step().unwrap()).collect();
    let mean = |s: &[GrpoStep]| s.iter().map(|m| m.format_rate).sum::<f64>() / s.len() as f64;
    let (first, last) = (mean(&log[..5]), mean(&log[25..]));
    assert!(
        first > 0.05 && first < 0.5,
        "the base model writes the template sometimes: {first}"
    );
    assert!(last > first + 0.3, "format rate {first:.2} → {last:.2}");
}

#[test]
fn the_soft_overlong_penalty_by_hand() {
    use zero_to_r1::lm::reward::overlong_penalty;
    assert_eq!(overlong_penalty(80, 100, 20), 0.0);
    assert_eq!(overlong_penalty(90, 100, 20), -0.5);
    assert_eq!(overlong_penalty(95, 100, 20), -0.75);
    assert_eq!(overlong_penalty(100, 100, 20), -1.0);
    assert_eq!(overlong_penalty(100, 100, 0), 0.0);
}

#[test]
fn overlong_filtering_leaves_cut_off_responses_out_of_the_loss() {
    // A budget of 8 tokens cuts off most responses of the untrained model.
    let mut c = tiny_config(1);
    c.grpo.max_new_tokens = 8;
    c.grpo.overlong_filter = true;
    c.grpo.overlong_buffer = 4;
    let trainer = GrpoTrainer::new(model(1), model(1), &c, 1).unwrap();
    let batch = trainer.rollout(0).unwrap();
    let mask: Vec<Vec<f32>> = batch.rows.mask.to_vec2().unwrap();
    let mut cut = 0;
    for (i, r) in batch.responses.iter().enumerate() {
        let real: f32 = mask[i].iter().sum();
        let finished = r.last() == Some(&zero_to_r1::lm::tokenizer::EOS);
        assert_eq!(real, if finished { r.len() as f32 } else { 0.0 }, "row {i}");
        let p = zero_to_r1::lm::reward::overlong_penalty(r.len(), 8, 4);
        assert_eq!(batch.rewards[i].overlong, p);
        assert!(
            (batch.rewards[i].total
                - (batch.rewards[i].format * 0.2 + batch.rewards[i].accuracy + p))
                .abs()
                < 1e-12
        );
        cut += usize::from(!finished);
    }
    assert!(
        cut > 0,
        "some responses must be cut off for the test to mean anything"
    );
    // Bad values name their key.
    for (text, key) in [
        ("[grpo]\nclip_high = -0.1\n", "grpo.clip_high"),
        (
            "[grpo]\nmax_new_tokens = 10\noverlong_buffer = 10\n",
            "grpo.overlong_buffer",
        ),
        ("[grpo]\nratio = \"paragraph\"\n", "ratio"),
    ] {
        let e = LmConfig::from_toml(text, "t.toml").unwrap_err().to_string();
        assert!(e.contains(key), "{text:?}: {e}");
    }
}

#[test]
fn dynamic_sampling_fills_the_batch_with_groups_that_teach() {
    // A tiny fine-tuned model on one-digit sums: many groups are all right or all wrong.
    let mut c = tiny_config(1);
    c.grpo.prompts = 6;
    let student = model(2);
    let task = c.task().unwrap();
    sft::train(&student, task.as_ref(), 1, &c.data, &c.sft, 2, |_| {}).ok();
    let plain = GrpoTrainer::new(student.copy().unwrap(), student.copy().unwrap(), &c, 5).unwrap();
    let first = plain.rollout(0).unwrap();
    let totals: Vec<f64> = first.rewards.iter().map(|r| r.total).collect();
    let dead = totals
        .chunks(4)
        .filter(|g| g.iter().all(|&x| x == g[0]))
        .count();
    assert!(
        dead > 0,
        "the test needs groups that teach nothing: {totals:?}"
    );
    c.grpo.dynamic_sampling = true;
    let dapo = GrpoTrainer::new(student.copy().unwrap(), student, &c, 5).unwrap();
    let batch = dapo.rollout(0).unwrap();
    let n = batch.responses.len();
    assert!(n % 4 == 0 && n <= 24 && n > 0);
    let totals: Vec<f64> = batch.rewards.iter().map(|r| r.total).collect();
    for g in totals.chunks(4) {
        assert!(g.iter().any(|&x| x != g[0]), "a dead group was kept: {g:?}");
    }
    // The step's own informative groups come first, with the sampler's responses, and the
    // recomputed log π_old equals the sampler's.
    let old: Vec<Vec<f32>> = first.rows.old_logp.to_vec2().unwrap();
    let new: Vec<Vec<f32>> = batch.rows.old_logp.to_vec2().unwrap();
    let live: Vec<usize> = (0..6)
        .filter(|&k| {
            first.rewards[4 * k..4 * k + 4]
                .iter()
                .any(|r| r.total != first.rewards[4 * k].total)
        })
        .collect();
    for (j, &k) in live.iter().enumerate() {
        for m in 0..4 {
            let (a, b) = (4 * k + m, 4 * j + m);
            assert_eq!(first.responses[a], batch.responses[b]);
            for t in 0..first.responses[a].len() {
                assert!((old[a][t] - new[b][t]).abs() < 1e-4, "row {a} token {t}");
            }
        }
    }
    // Same seed, same batch.
    let again = dapo.rollout(0).unwrap();
    assert_eq!(again.responses, batch.responses);
}
