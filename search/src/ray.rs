//! Candidate evaluations on a Ray cluster. The search driver stays here (strategy, journal,
//! report); a small Python program (`search/ray/archc_ray.py`, compiled into archc and
//! written beside the journal) connects to the cluster, runs each evaluation as Ray tasks
//! (`archc search-worker` on the nodes: the timing on a node with the target resource, the
//! training anywhere), and streams the results back as JSON lines. Ray retries a task whose
//! worker or node dies; a driver restarted with `--resume` starts a new glue process and
//! goes on from the journal.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::candidate::Request;
use crate::worker::{Done, Executor, Message};
use crate::{Error, Result};

/// The glue program.
const GLUE: &str = include_str!("../ray/archc_ray.py");

/// How long the glue may take to connect to the cluster (starting a local one included).
const CONNECT: Duration = Duration::from_secs(180);

/// Where and how to run on Ray.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RayOptions {
    /// The Python interpreter that has `ray` installed.
    pub python: String,
    /// The cluster (`ray start --head` prints it); `None` starts a local one.
    pub address: Option<String>,
    /// The custom resource of the nodes that measure latencies (`ray start --resources
    /// '{"cpu_znver4": 1}'`); `None`: any node.
    pub target_resource: Option<String>,
}

/// What the glue says.
#[derive(Deserialize)]
struct Line {
    id: Option<usize>,
    message: Option<Message>,
    ready: Option<serde_json::Value>,
}

/// Evaluations as Ray tasks, at most `jobs` at a time.
pub struct RayWorkers {
    glue: Child,
    stdin: ChildStdin,
    lines: Receiver<Option<String>>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    jobs: usize,
    limit: Duration,
    /// Running evaluations and their deadlines.
    running: HashMap<usize, Instant>,
}

impl RayWorkers {
    /// Starts the glue with the archc executable `archc` (the same path on every node), and
    /// waits until it is connected.
    pub fn connect(
        options: &RayOptions,
        archc: &Path,
        out: &Path,
        jobs: usize,
        threads: usize,
        limit: Duration,
    ) -> Result<RayWorkers> {
        let fail = |message: String| Error::Ray { message };
        let script: PathBuf = out.join("archc_ray.py");
        std::fs::write(&script, GLUE)
            .map_err(|source| Error::Io { path: script.display().to_string(), source })?;
        let mut command = Command::new(&options.python);
        command.arg(&script).arg("--archc").arg(archc).arg("--cpus").arg(threads.to_string());
        if let Some(address) = &options.address {
            command.arg("--address").arg(address);
        }
        if let Some(resource) = &options.target_resource {
            command.arg("--target-resource").arg(resource);
        }
        let mut glue = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(format!("cannot start {}: {e}", options.python)))?;
        let stdin = glue.stdin.take().expect("piped");
        let stdout = glue.stdout.take().expect("piped");
        let mut stderr_pipe = glue.stderr.take().expect("piped");
        let (sender, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(Some(line)).is_err() {
                    return;
                }
            }
            let _ = sender.send(None);
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let kept = std::sync::Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr_pipe.read_to_string(&mut text);
            *kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = text;
        });
        let mut workers =
            RayWorkers { glue, stdin, lines, stderr, jobs: jobs.max(1), limit, running: HashMap::new() };
        match workers.lines.recv_timeout(CONNECT) {
            Ok(Some(line)) if serde_json::from_str::<Line>(&line).is_ok_and(|l| l.ready.is_some()) => {
                Ok(workers)
            }
            Ok(Some(line)) => Err(fail(format!("unexpected first line from the Ray glue: {line}"))),
            _ => {
                let _ = workers.glue.kill();
                let _ = workers.glue.wait();
                std::thread::sleep(Duration::from_millis(100));
                Err(fail(format!("could not connect to Ray: {}", workers.stderr_tail())))
            }
        }
    }

    fn stderr_tail(&self) -> String {
        let text = self.stderr.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let start = text.len().saturating_sub(2000);
        text[text.ceil_char_boundary(start)..].trim().to_string()
    }

    fn send(&mut self, line: &serde_json::Value) -> std::io::Result<()> {
        writeln!(self.stdin, "{line}")?;
        self.stdin.flush()
    }
}

impl Executor for RayWorkers {
    fn free(&self) -> bool {
        self.running.len() < self.jobs
    }

    fn start(&mut self, id: usize, request: &Request) -> Option<Done> {
        let line = serde_json::json!({ "start": id, "request": request });
        if let Err(e) = self.send(&line) {
            return Some(Done {
                id,
                result: Err(format!("the Ray glue is gone ({e}): {}", self.stderr_tail())),
            });
        }
        self.running.insert(id, Instant::now() + self.limit);
        None
    }

    fn next(&mut self, timeout: Duration) -> Option<Done> {
        let now = Instant::now();
        if let Some((&id, _)) = self.running.iter().find(|(_, deadline)| now >= **deadline) {
            self.running.remove(&id);
            let _ = self.send(&serde_json::json!({ "cancel": id }));
            return Some(Done {
                id,
                result: Err(format!("timed out after {:.0} s", self.limit.as_secs_f64())),
            });
        }
        match self.lines.recv_timeout(timeout) {
            Ok(Some(line)) => {
                let parsed: Line = serde_json::from_str(&line).ok()?;
                let (id, message) = (parsed.id?, parsed.message?);
                // A result for an evaluation cancelled at its time limit comes too late.
                self.running.remove(&id)?;
                let result = match message {
                    Message::Done { evaluation } => Ok(evaluation),
                    Message::Failed { error } => Err(error),
                    other => Err(format!("unexpected message from Ray: {other:?}")),
                };
                Some(Done { id, result })
            }
            Ok(None) | Err(RecvTimeoutError::Disconnected) => {
                // The glue died: every running evaluation fails with its last words.
                let id = *self.running.keys().next()?;
                self.running.remove(&id);
                std::thread::sleep(timeout.min(Duration::from_millis(100)));
                Some(Done { id, result: Err(format!("the Ray glue died: {}", self.stderr_tail())) })
            }
            Err(RecvTimeoutError::Timeout) => None,
        }
    }
}

impl Drop for RayWorkers {
    fn drop(&mut self) {
        let _ = self.glue.kill();
        let _ = self.glue.wait();
    }
}
