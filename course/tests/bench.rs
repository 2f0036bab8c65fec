//! The benchmark command's arithmetic, and that it runs; its timings are never asserted.

// The helpers shared with the library's tests (tests/common).
#[path = "../../tests/common/mod.rs"]
mod common;

use common::tiny;
use course::bench::{forward_flops_per_token, median};
use zero_to_r1::candle::Device;
use zero_to_r1::lm::config::LmConfig;

#[test]
fn median_by_hand() {
    assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    assert_eq!(median(&[7.0]), 7.0);
    assert!(median(&[]).is_nan());
}

#[test]
fn mean_or_none_by_hand() {
    use zero_to_r1::rollout::mean_or_none;
    assert_eq!(mean_or_none([1.0, 2.0, 6.0]), Some(3.0));
    assert_eq!(mean_or_none(std::iter::empty()), None);
}

#[test]
fn flops_by_hand() {
    // The tiny GPT: vocab 55, context 32, width 16, 2 blocks, MLP 24.
    // A block: two norms 4·16, qkv 16·48 + 48, projection 16·16 + 16, MLP 16·24 + 24 and
    // 24·16 + 16: 64 + 816 + 272 + 408 + 400 = 1960. The model: embeddings (55 + 32)·16 = 1392,
    // blocks 3920, final norm 32, head 16·55 = 880: 6224 parameters, 4832 outside the
    // embeddings. Forward, attending to 10 positions: 2·4832 + 4·2·10·16 = 10944.
    let c = tiny();
    assert_eq!(c.parameters(), 6224);
    assert_eq!(forward_flops_per_token(&c, 10.0), 10944.0);
}

#[test]
fn the_lm_bench_measures_the_configured_batch() {
    let mut c = LmConfig {
        model: tiny(),
        ..LmConfig::default()
    };
    c.task.difficulty = 1;
    c.grpo.prompts = 2;
    c.grpo.group_size = 3;
    c.grpo.max_new_tokens = 6;
    c.validate().unwrap();
    let mut calls = 0;
    let b = course::bench::lm(&c, &Device::Cpu, 2, 0, Some(1.0), |_| calls += 1).unwrap();
    assert_eq!(calls, 6);
    assert_eq!((b.batch, b.parameters), (6, 6224));
    assert!(b.new_tokens >= 1 && b.new_tokens <= 6);
    for x in [b.rollout_tokens_per_s, b.train_tokens_per_s, b.grpo_step_s] {
        assert!(x.is_finite() && x > 0.0);
    }
    assert_eq!(b.mfu, Some(b.train_tflops_achieved));
    assert!(course::bench::lm(&c, &Device::Cpu, 0, 0, None, |_| {}).is_err());
}
