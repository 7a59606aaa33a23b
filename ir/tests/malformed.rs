//! Every file in `tests/malformed/` is a small network with one mistake. Its first line,
//! `// expect: LINE:COL: MESSAGE`, says where the error must point and a part of its message
//! (`\n` in MESSAGE stands for a line break). Each file must fail to build or to verify, with
//! exactly that location and a message containing that part.

use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/malformed");

/// What a file's header promises.
struct Expected {
    line: usize,
    col: usize,
    message: String,
}

fn expected(text: &str) -> Result<Expected, String> {
    let header = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("// expect: "))
        .ok_or("the first line is not `// expect: LINE:COL: MESSAGE`")?;
    let mut parts = header.splitn(3, ':');
    let mut number = |what: &str| {
        parts
            .next()
            .and_then(|p| p.trim().parse().ok())
            .ok_or(format!("the header `{header}` has no {what} number"))
    };
    let (line, col) = (number("line")?, number("column")?);
    let message = parts.next().map(str::trim).unwrap_or_default().replace("\\n", "\n");
    if message.is_empty() {
        return Err(format!("the header `{header}` has no message"));
    }
    Ok(Expected { line, col, message })
}

fn build(text: &str, name: &str) -> ir::Result<()> {
    let graph = ir::from_ron_str(text, name, &ir::BuildOptions::default())?;
    ir::verify(&graph)
}

/// Why the file does not fail as its header says, if it does not.
fn mismatch(name: &str, text: &str) -> Option<String> {
    let expected = match expected(text) {
        Ok(e) => e,
        Err(why) => return Some(why),
    };
    let prefix = format!("{name}:{}:{}: ", expected.line, expected.col);
    let want = format!("{prefix}...{}...", expected.message);
    // A panic is the worst way to fail; report it with the file rather than abort the test.
    let error = match panic::catch_unwind(AssertUnwindSafe(|| build(text, name))) {
        Err(_) => return Some(format!("panicked (see the message above); expected\n  {want}")),
        Ok(Ok(())) => return Some(format!("builds and verifies; expected the error\n  {want}")),
        Ok(Err(e)) => e.to_string(),
    };
    let fits = error.strip_prefix(&prefix).is_some_and(|rest| rest.contains(&expected.message));
    (!fits).then(|| format!("expected\n  {want}\ngot\n  {error}"))
}

fn corpus() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(CORPUS)
        .unwrap_or_else(|e| panic!("{CORPUS}: {e}"))
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "ron"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_malformed_file_fails_where_its_header_says() {
    let files = corpus();
    assert!(files.len() >= 25, "{CORPUS} holds {} files; it should hold at least 25", files.len());
    let failures: Vec<String> = files
        .iter()
        .filter_map(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).expect("a UTF-8 file name");
            let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            mismatch(name, &text).map(|why| format!("{name}: {why}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} malformed files do not fail as their headers say:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}
