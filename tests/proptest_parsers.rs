//! Property tests of the parsers that read user input (a map, a config, text to tokenize):
//! arbitrary input never panics and round trips hold. The verifiers and rewards, which read
//! prompts and a model's output, are in `proptest_verifiers.rs`.
//!
//! Failures are not written to a file (`failure_persistence: None`): proptest prints the
//! shrunk input, which becomes a named test in course/tests/reproducers/verifiers.rs.

use proptest::prelude::*;

use zero_to_r1::gridworld::House;
use zero_to_r1::lm::config::{LmConfig, TaskConfig};
use zero_to_r1::lm::task::{task_by_name, TASKS};
use zero_to_r1::lm::tokenizer::{Tokenizer, CHARS, EOS, PAD, SPECIALS};

mod strategies;
use strategies::{cases, soup};

// ---------------------------------------------------------------------------------------------
// The map parser

const MAP_PIECES: &[&str] = &[
    ".", ".", ".", "#", "#", "B", "T", "M", "C", "\n", "\n", "\r\n", " ", "@", "\t",
];

/// A rectangle of cells, as the rows of a map.
fn grid() -> impl Strategy<Value = Vec<String>> {
    (1usize..10, 1usize..10).prop_flat_map(|(rows, cols)| {
        let cell = prop::sample::select(vec!['.', '.', '.', '#', 'B', 'T', 'M', 'C']);
        prop::collection::vec(
            prop::collection::vec(cell, cols).prop_map(|r| r.into_iter().collect::<String>()),
            rows,
        )
    })
}

proptest! {
    #![proptest_config(cases(1024))]

    #[test]
    fn map_parser_never_panics(text in soup(MAP_PIECES, 120), other in any::<String>()) {
        let _ = House::parse(&text);
        let _ = House::parse(&other);
    }

    #[test]
    fn parsed_maps_render_back_to_themselves(rows in grid(), blank in 0usize..3) {
        let text = format!("{}{}\n{}", "\n".repeat(blank), rows.join("\n"), " \n".repeat(blank));
        if let Ok(house) = House::parse(&text) {
            let drawn = house.render(None);
            prop_assert_eq!(drawn.trim_end(), rows.join("\n"));
            prop_assert_eq!(House::parse(&drawn).unwrap(), house);
        } else {
            // Rejected only for a reason a person can fix: no start, no meat, or no path.
            let cells = rows.concat();
            prop_assert!(!cells.contains('C') || !cells.contains('M') || cells.contains('#'));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The config loader

const TOML_PIECES: &[&str] = &[
    "[task]\n",
    "[model]\n",
    "[data]\n",
    "[sft]\n",
    "[eval]\n",
    "[reward]\n",
    "[grpo]\n",
    "[[task]]\n",
    "name",
    "difficulty",
    "vocab",
    "context",
    "d_model",
    "layers",
    "heads",
    "mlp",
    "slip_rate",
    "missing_tag_rate",
    "steps",
    "batch_size",
    "lr",
    "warmup",
    "weight_decay",
    "max_grad_norm",
    "problems",
    "k",
    "temperature",
    "max_new_tokens",
    "format",
    "accuracy",
    "prompts",
    "group_size",
    "epochs",
    "minibatches",
    "micro_batch",
    "clip",
    "beta",
    "scale_by_std",
    "aggregation",
    " = ",
    "=",
    "\n",
    "\n",
    "0",
    "1",
    "-1",
    "7",
    "1e-3",
    "0.5",
    "nan",
    "inf",
    "-inf",
    "1e308",
    "18446744073709551616",
    "9223372036854775807",
    "true",
    "\"countdown\"",
    "\"addition\"",
    "\"dr_grpo\"",
    "\"",
    "[",
    "]",
    "{",
    "}",
    ",",
    ".",
    "#",
    "'",
    "\"\"\"",
    "_",
];

/// A valid config, drawn field by field within each field's range.
fn valid_config() -> impl Strategy<Value = LmConfig> {
    let task = prop::sample::select(TASKS.to_vec()).prop_flat_map(|name| {
        let max = task_by_name(name).unwrap().max_difficulty();
        (Just(name), 1..=max, any::<bool>()).prop_map(|(name, difficulty, think)| TaskConfig {
            name: name.into(),
            difficulty,
            template: if think {
                zero_to_r1::lm::task::Template::Think
            } else {
                zero_to_r1::lm::task::Template::Plain
            },
        })
    });
    let model = (1usize..9, 1usize..64, 1usize..9, 1usize..512, 1usize..2048);
    let rates = (0.0f64..0.5, 0.0f64..0.5);
    let sft = (
        1usize..100_000,
        0.0f64..1.0,
        1e-6f64..1.0,
        0.0f64..=1.0,
        1e-3f64..100.0,
    );
    let eval = (
        1usize..1000,
        1usize..16,
        0.0f64..2.0,
        1usize..256,
        1usize..1000,
    );
    let reward = (0.0f64..2.0, 0.01f64..2.0);
    (task, model, rates, sft, eval, reward).prop_map(|(task, m, r, s, e, w)| {
        let mut c = LmConfig {
            task,
            ..LmConfig::default()
        };
        (c.model.heads, c.model.d_model) = (m.0, m.0 * m.1);
        (c.model.layers, c.model.context, c.model.mlp) = (m.2, m.3, m.4);
        (c.data.slip_rate, c.data.missing_tag_rate) = r;
        c.sft.steps = s.0;
        c.sft.warmup = (s.0 as f64 * s.1) as usize;
        (c.sft.lr, c.sft.weight_decay, c.sft.max_grad_norm) = (s.2, s.3, s.4);
        (c.eval.problems, c.eval.k, c.eval.temperature) = (e.0, e.1, e.2);
        (c.eval.max_new_tokens, c.eval.batch_size) = (e.3, e.4);
        (c.reward.format, c.reward.accuracy) = w;
        c
    })
}

proptest! {
    #![proptest_config(cases(1024))]

    #[test]
    fn config_loader_never_panics(text in soup(TOML_PIECES, 40), other in any::<String>()) {
        let _ = LmConfig::from_toml(&text, "prop.toml");
        let _ = LmConfig::from_toml(&other, "prop.toml");
    }

    #[test]
    fn valid_configs_round_trip_through_toml(config in valid_config()) {
        prop_assume!(config.validate().is_ok());
        let text = config.to_toml().unwrap();
        prop_assert_eq!(LmConfig::from_toml(&text, "round-trip.toml").unwrap(), config);
    }
}

// ---------------------------------------------------------------------------------------------
// The tokenizer

/// Text in the tokenizer's alphabet: its characters and its special tokens' tags.
fn vocabulary_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        8 => prop::sample::select(CHARS.chars().collect::<Vec<_>>()).prop_map(String::from),
        2 => prop::sample::select(SPECIALS.to_vec()).prop_map(str::to_string),
    ];
    prop::collection::vec(piece, 0..80).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(cases(1024))]

    #[test]
    fn tokenizer_never_panics(text in any::<String>(), ids in prop::collection::vec(any::<u32>(), 0..40)) {
        let tok = Tokenizer;
        if let Ok(ids) = tok.encode(&text) {
            prop_assert_eq!(tok.decode(&ids).unwrap(), text);
        }
        let vocab = tok.vocab_size() as u32;
        prop_assert_eq!(tok.decode(&ids).is_ok(), ids.iter().all(|&i| i < vocab));
        let _ = tok.decode_response(&ids);
    }

    #[test]
    fn tokenizer_round_trips_on_its_alphabet(text in vocabulary_text()) {
        let tok = Tokenizer;
        let ids = tok.encode(&text).unwrap();
        prop_assert!(ids.len() <= text.chars().count());
        prop_assert_eq!(tok.decode(&ids).unwrap(), text);
    }

    #[test]
    fn token_ids_round_trip(ids in prop::collection::vec(0u32..Tokenizer.vocab_size() as u32, 0..60)) {
        let tok = Tokenizer;
        let text = tok.decode(&ids).unwrap();
        prop_assert_eq!(tok.encode(&text).unwrap(), ids.clone());
        let end = ids.iter().position(|&i| i == EOS).unwrap_or(ids.len());
        let kept: Vec<u32> = ids[..end].iter().copied().filter(|&i| i != PAD).collect();
        prop_assert_eq!(tok.decode_response(&ids), tok.decode(&kept).unwrap());
    }
}
