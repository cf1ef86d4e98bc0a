//! Any text as a condition; the ones that parse are evaluated against a fixed event-like object.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logship_fuzz::pipeline::condition::Condition;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(condition) = Condition::parse(text)
    {
        let fields = serde_json::json!({
            "message": "GET /healthz 200",
            "level": "info",
            "http": {"status": 200, "ok": true, "took": 0.25},
            "tags": ["a", "b"],
            "none": null
        });
        if let Some(map) = fields.as_object() {
            let _ = condition.eval(map);
        }
    }
});
