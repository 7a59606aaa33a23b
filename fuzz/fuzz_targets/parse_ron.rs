//! Feeds arbitrary text to the RON front-end: it builds a graph or reports an error, and never
//! panics; every graph it builds verifies and prints.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The front-end reads text; bytes that are not UTF-8 never reach it.
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(graph) = ir::from_ron_str(text, "fuzz.ron", &ir::BuildOptions::default()) {
        if let Err(e) = ir::verify(&graph) {
            panic!("the front-end built a graph that does not verify: {e}");
        }
        ir::print::to_text(&graph);
    }
});
