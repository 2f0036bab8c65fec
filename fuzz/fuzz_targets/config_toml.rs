//! A config file: loading never panics, and a config that loads saves and loads back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zero_to_r1::lm::config::LmConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = LmConfig::from_toml(text, "fuzz.toml") {
        let saved = config.to_toml().expect("a valid config saves");
        let again = LmConfig::from_toml(&saved, "saved.toml").expect("a saved config loads");
        assert_eq!(again, config);
    }
});
