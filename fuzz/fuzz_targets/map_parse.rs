//! A house map: parsing never panics, and a parsed house renders back to itself.
#![no_main]

use gridworld::House;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(house) = House::parse(text) {
        let drawn = house.render(None);
        assert_eq!(House::parse(&drawn).expect("a drawn house parses"), house);
    }
});
