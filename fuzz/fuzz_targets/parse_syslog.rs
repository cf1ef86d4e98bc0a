//! Any text through the syslog parser, with and without a time zone: it may fail, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logship_fuzz::pipeline::parse::syslog;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let now = chrono::DateTime::from_timestamp(1_795_305_600, 0).unwrap_or_default();
        let _ = syslog::parse(text, now, None);
        let _ = syslog::parse(text, now, Some(chrono_tz::Tz::Europe__Berlin));
    }
});
