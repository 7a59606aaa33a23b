//! `archc search` end to end on a tiny space and synthetic data: it writes a front, a report
//! and the front's networks; a search killed with `kill -9` at several points and resumed
//! asks the same candidates as one never interrupted, loses no finished evaluation and
//! repeats none, and survives a journal whose last line was cut; a crashing and a hanging
//! candidate are recorded with their errors while the search goes on; bad input exits 2.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::archc;

const SPACE: &str = "tests/fixtures/spaces/tiny.ron";

fn search_args<'a>(out: &'a str, candidates: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args =
        vec!["search", SPACE, "--out", out, "--max-candidates", candidates, "--jobs", "2", "--json"];
    args.extend_from_slice(extra);
    args
}

fn journal(dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The genomes the strategy asked, in order (of the last search started without --resume).
fn asked(events: &[serde_json::Value]) -> Vec<serde_json::Value> {
    let start = events.iter().rposition(|e| e["event"] == "start" && e["resume"] == false).unwrap();
    events[start..].iter().filter(|e| e["event"] == "asked").map(|e| e["genome"].clone()).collect()
}

fn finished_per_key(events: &[serde_json::Value]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for e in events.iter().filter(|e| e["event"] == "finished") {
        *counts.entry(format!("{}/{}", e["key"], e["stage"])).or_default() += 1;
    }
    counts
}

#[test]
fn search_writes_a_front_and_resumes_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reference");
    let out = archc(&search_args(reference.to_str().unwrap(), "6", &[]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let front = summary["front"].as_array().unwrap();
    assert!(!front.is_empty(), "{summary}");
    assert_eq!(summary["candidates"], 6);
    assert_eq!(summary["baselines"].as_array().unwrap().len(), 1);
    for file in ["front.json", "candidates.jsonl", "front.svg", "report.html"] {
        assert!(reference.join(file).is_file(), "{file} is missing");
    }
    assert_eq!(std::fs::read_to_string(reference.join("candidates.jsonl")).unwrap().lines().count(), 7);
    for member in front {
        let file = reference.join(member["file"].as_str().unwrap());
        let check = archc(&["check", file.to_str().unwrap()]);
        assert!(check.status.success(), "{}: {}", file.display(), String::from_utf8_lossy(&check.stderr));
        assert!(member["latency_ms"].as_f64().unwrap() > 0.0);
        assert!(member["long_accuracy"].is_number(), "finalists get the longer training: {member}");
    }
    let reference_asks = asked(&journal(&reference));
    assert_eq!(reference_asks.len(), 6);

    // The same search, killed at several points and resumed; before the last resumption, its
    // journal's last line is cut in half, as a crash in the middle of a write would leave it.
    let killed = dir.path().join("killed");
    let killed_str = killed.to_str().unwrap();
    // Kill points vary from run to run (and are printed on failure): a search may die anywhere.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let delays: Vec<u64> = (0..3).map(|i| 1500 + u64::from(nanos.rotate_left(8 * i)) % 5000).collect();
    for (round, &delay) in delays.iter().enumerate() {
        let mut args = search_args(killed_str, "6", &[]);
        if round > 0 {
            args.push("--resume");
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_archc"))
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap();
        child.wait().unwrap();
        let counts = finished_per_key(&journal(&killed));
        assert!(
            counts.values().all(|&n| n == 1),
            "kills after {delays:?} ms: round {round} repeated: {counts:?}"
        );
    }
    let before = journal(&killed);
    let text = std::fs::read_to_string(killed.join("journal.jsonl")).unwrap();
    let last_line = text.trim_end().rsplit('\n').next().unwrap().len();
    std::fs::write(killed.join("journal.jsonl"), &text[..text.len() - 1 - last_line / 2]).unwrap();
    let out = archc(&search_args(killed_str, "6", &["--resume"]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let after = journal(&killed);
    let counts = finished_per_key(&after);
    assert!(counts.values().all(|&n| n == 1), "kills after {delays:?} ms: repeated: {counts:?}");
    // Every evaluation finished before the last kill is still there (the cut line aside).
    for e in before[..before.len() - 1].iter().filter(|e| e["event"] == "finished") {
        assert!(after.contains(e), "kills after {delays:?} ms: lost {e}");
    }
    assert_eq!(asked(&after), reference_asks, "kills after {delays:?} ms: other candidates asked");
    let resumed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(resumed["candidates"], 6);

    // A new search in the same folder starts over but evaluates nothing again.
    let out = archc(&search_args(killed_str, "6", &[]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(finished_per_key(&journal(&killed)), counts, "the journal's evaluations were reused");
}

#[test]
fn crashing_and_hanging_candidates_are_recorded_and_the_search_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let worker = dir.path().join("worker.sh");
    // Candidate c001 crashes, c002 hangs; the others go to the real worker.
    std::fs::write(
        &worker,
        format!(
            "#!/bin/sh\nread -r request\ncase \"$request\" in\n  \
             *'\"file\":\"tiny/c001\"'*) echo 'injected crash' >&2; kill -SEGV $$ ;;\n  \
             *'\"file\":\"tiny/c002\"'*) exec sleep 600 ;;\nesac\n\
             {{ printf '%s\\n' \"$request\"; cat; }} | exec {} search-worker\n",
            env!("CARGO_BIN_EXE_archc")
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&worker, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out_dir = dir.path().join("out");
    let out = Command::new(env!("CARGO_BIN_EXE_archc"))
        .args(search_args(out_dir.to_str().unwrap(), "4", &["--candidate-timeout", "8s"]))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("ARCHC_SEARCH_WORKER", worker.to_str().unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["failed"], 2, "{summary}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(out_dir.join("candidates.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let error = |name: &str| lines.iter().find(|l| l["name"] == name).unwrap()["short"]["error"].to_string();
    assert!(error("c001").contains("injected crash"), "{}", error("c001"));
    assert!(error("c002").contains("timed out"), "{}", error("c002"));
    assert!(lines.iter().filter(|l| l["short"]["evaluation"].is_object()).count() >= 3);
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(html.contains("injected crash"));
}

#[test]
fn bad_input_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let out_str = out_dir.to_str().unwrap();
    let out = archc(&["search", "tests/fixtures/spaces/missing.ron", "--out", out_str]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!out_dir.exists(), "nothing is written for a bad space");
    let broken = dir.path().join("broken.ron");
    std::fs::write(&broken, "Space(\n  name: \"x\",\n  network: 3,\n)").unwrap();
    let out = archc(&["search", broken.to_str().unwrap(), "--out", out_str]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.ron:3:"), "{stderr}");
    let out = archc(&["search", SPACE, "--out", out_str, "--strategy", "annealing"]);
    assert_eq!(out.status.code(), Some(2));
    let out = archc(&["search", SPACE, "--out", out_str, "--data", "mnist:/nonexistent"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!out_dir.exists(), "nothing is written for bad data");
    // Resuming with other settings than the journal's is refused.
    let out = archc(&search_args(out_str, "1", &["--long-epochs", "0"]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = archc(&search_args(out_str, "1", &["--long-epochs", "0", "--seed", "9", "--resume"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another search"));
}
