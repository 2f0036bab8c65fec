//! Text and token ids: encoding and decoding never panic and are exact inverses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zero_to_r1::lm::tokenizer::Tokenizer;

fuzz_target!(|data: &[u8]| {
    let tok = Tokenizer;
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(ids) = tok.encode(text) {
            assert_eq!(tok.decode(&ids).expect("encoded ids decode"), text);
        }
    }
    // The same bytes as token ids (two bytes each, so that ids past the vocabulary occur).
    let ids: Vec<u32> = data
        .chunks(2)
        .map(|c| u32::from(c[0]) | c.get(1).map_or(0, |&b| u32::from(b) << 8))
        .map(|x| x % 64)
        .collect();
    let _ = tok.decode_response(&ids);
    if let Ok(text) = tok.decode(&ids) {
        assert_eq!(tok.encode(&text).expect("decoded text encodes"), ids);
    }
});
