//! Configuration files of any text: `edge.toml` (`underpass_edge::config::EdgeConfig`, parsed
//! and validated) and `connector.toml` (`underpass_connector::config::ConnectorConfig`).
//! Nothing here reads the files they name.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use underpass_connector::config::ConnectorConfig;
use underpass_edge::config::EdgeConfig;
use underpass_fuzz::mode;

fuzz_target!(|data: &[u8]| {
    let Some((m, rest)) = mode(data) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if m & 1 == 0 {
        if let Ok(config) = toml::from_str::<EdgeConfig>(text) {
            if config.validate().is_ok() {
                let _ = config.grants("c", "s");
                let _ = config.has_service("s");
            }
        }
    } else if let Ok(config) = ConnectorConfig::from_toml(text, Path::new("/nonexistent")) {
        let _ = config.descriptor_budget();
        for s in &config.services {
            let _ = (s.backend.kind(), s.backend.sessions());
        }
    }
});
