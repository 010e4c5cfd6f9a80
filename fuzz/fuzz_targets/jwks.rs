//! JWKS documents of any bytes, read as the edge reads its `jwks_file`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use underpass_edge::auth::fuzzing::jwks_key_count;

fuzz_target!(|data: &[u8]| {
    if let Ok(n) = jwks_key_count(data) {
        // A document that loads has usable keys, or deliberately none (`"keys": []`).
        let doc: serde_json::Value = serde_json::from_slice(data).expect("it loaded");
        let listed = doc["keys"].as_array().map_or(0, Vec::len);
        assert!(n <= listed);
        assert!(n > 0 || listed == 0);
    }
});
