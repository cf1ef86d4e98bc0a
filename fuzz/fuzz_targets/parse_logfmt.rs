//! Any text through the logfmt parser: it may fail, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logship_fuzz::pipeline::parse::logfmt;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = logfmt::parse(text);
    }
});
