//! The search's journal: every event in an append-only JSON-lines file, each line flushed to
//! disk before the search goes on, so that a search killed at any point resumes without
//! losing or repeating finished work. Evaluations are keyed by what determines their result
//! (the network, the compiler and device, the data and the recipe), so the journal is also a
//! cache across searches.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::candidate::{Evaluation, Stage};
use crate::{Error, Result};

/// One line of the journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A search, or its resumption, began. A new search in the same folder starts over but
    /// reuses every evaluation the journal holds.
    Start {
        /// What identifies the search: space, strategy, seed and settings. A resumed search
        /// must have the same.
        search: String,
        /// Whether it resumed the search before it.
        resume: bool,
        /// The device fingerprint, for the reader.
        device: String,
    },
    /// The strategy asked for its `index`-th genome (0-based, counted over the search).
    Asked {
        /// Position in the search's sequence of asks.
        index: usize,
        /// The genome.
        genome: Vec<usize>,
        /// The candidate's name (`c017`).
        name: String,
    },
    /// An evaluation finished.
    Finished {
        /// What was evaluated (see [`key`]).
        key: String,
        /// Which evaluation.
        stage: Stage,
        /// The candidate or baseline it was done for.
        name: String,
        /// What it measured.
        evaluation: Evaluation,
    },
    /// An evaluation failed: the network does not build or compile, the worker crashed or
    /// ran out of time.
    Failed {
        /// What was evaluated.
        key: String,
        /// Which evaluation.
        stage: Stage,
        /// The candidate or baseline.
        name: String,
        /// Why.
        error: String,
    },
    /// Seconds of search so far (the budget counts them across resumptions).
    Elapsed {
        /// Seconds.
        seconds: f64,
    },
}

/// An open journal, appending.
pub struct Journal {
    file: File,
    path: PathBuf,
}

impl Journal {
    /// Opens (or creates) the journal at `path` and reads its events. A last line cut short by
    /// a crash (no newline, or not an event) is dropped from the file; any other line that is
    /// not an event is an error.
    pub fn open(path: &Path) -> Result<(Journal, Vec<Event>)> {
        let shown = path.display().to_string();
        let io = |source| Error::Io { path: shown.clone(), source };
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(path).map_err(io)?;
        let mut events = Vec::new();
        let mut good_bytes = 0u64;
        let size = file.metadata().map_err(io)?.len();
        let mut lines = BufReader::new(&file).split(b'\n').enumerate().peekable();
        let mut damaged = false;
        while let Some((i, line)) = lines.next() {
            let line = line.map_err(io)?;
            let last = lines.peek().is_none();
            // A line is complete when its newline is in the file.
            let complete = good_bytes + (line.len() as u64) < size;
            match serde_json::from_slice::<Event>(&line) {
                Ok(event) if complete => {
                    events.push(event);
                    good_bytes += line.len() as u64 + 1;
                }
                _ if last => damaged = true,
                Err(e) => return Err(Error::Journal { path: shown, line: i + 1, message: e.to_string() }),
                Ok(_) => unreachable!("only the last line can lack its newline"),
            }
        }
        if damaged {
            file.set_len(good_bytes).map_err(io)?;
            file.seek(SeekFrom::End(0)).map_err(io)?;
        }
        Ok((Journal { file, path: path.to_path_buf() }, events))
    }

    /// Appends `event` and waits until it is on disk.
    pub fn append(&mut self, event: &Event) -> Result<()> {
        let mut line = serde_json::to_vec(event).expect("events serialize");
        line.push(b'\n');
        let io = |source| Error::Io { path: self.path.display().to_string(), source };
        self.file.write_all(&line).map_err(io)?;
        self.file.sync_data().map_err(io)
    }
}

/// The key of an evaluation: a hash of everything its result depends on, given as parts
/// (the network's IR, the device fingerprint, the data, the recipe, the protocol).
pub fn key(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for part in parts {
        // Lengths first, so that no two lists of parts hash the same text.
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(index: usize) -> Event {
        Event::Asked { index, genome: vec![index, 1], name: format!("c{index:03}") }
    }

    #[test]
    fn events_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let (mut journal, events) = Journal::open(&path).unwrap();
        assert!(events.is_empty());
        journal.append(&asked(0)).unwrap();
        journal.append(&Event::Elapsed { seconds: 1.5 }).unwrap();
        drop(journal);
        let (_, events) = Journal::open(&path).unwrap();
        assert_eq!(events, [asked(0), Event::Elapsed { seconds: 1.5 }]);
    }

    #[test]
    fn a_truncated_last_line_is_dropped_and_appending_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let (mut journal, _) = Journal::open(&path).unwrap();
        journal.append(&asked(0)).unwrap();
        journal.append(&asked(1)).unwrap();
        drop(journal);
        let text = std::fs::read(&path).unwrap();
        // Cut inside the last line, and also just before its newline: both are incomplete.
        for cut in [text.len() - 5, text.len() - 1] {
            std::fs::write(&path, &text[..cut]).unwrap();
            let (mut journal, events) = Journal::open(&path).unwrap();
            assert_eq!(events, [asked(0)]);
            journal.append(&asked(2)).unwrap();
            drop(journal);
            let (_, events) = Journal::open(&path).unwrap();
            assert_eq!(events, [asked(0), asked(2)]);
        }
    }

    #[test]
    fn a_damaged_line_inside_is_an_error_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let good = serde_json::to_string(&asked(0)).unwrap();
        std::fs::write(&path, format!("{good}\n{{\"event\": \"nonsense\"}}\n{good}\n")).unwrap();
        let error = Journal::open(&path).err().unwrap().to_string();
        assert!(error.contains("journal.jsonl:2:"), "{error}");
    }

    #[test]
    fn keys_separate_their_parts() {
        assert_ne!(key(&["ab", "c"]), key(&["a", "bc"]));
        assert_eq!(key(&["x"]), key(&["x"]));
        assert_eq!(key(&["x"]).len(), 24);
    }
}
