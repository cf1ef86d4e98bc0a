//! Any text through the CRI and docker parsers, and sequences of lines through the partial-line
//! merger: they may fail, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logship_fuzz::pipeline::parse::container::{self, PartialMerger};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = container::parse_cri(text);
        let _ = container::parse_docker(text);
        let mut merger = PartialMerger::new(64);
        for line in text.lines() {
            if let Ok(parsed) = container::parse_auto(line) {
                let _ = merger.push(parsed);
            }
        }
    }
});
