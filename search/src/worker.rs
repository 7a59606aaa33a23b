//! Evaluations in child processes, and the protocol between the search driver and them.
//!
//! A candidate that crashes, hangs or exhausts memory must not take the search with it, so
//! each evaluation runs in its own worker process (`archc search-worker`): the driver writes
//! a [`Request`] as one JSON line to its stdin and reads [`Message`]s from its stdout.
//!
//! Latencies are taken with nothing else running: when a worker has compiled its network it
//! asks for quiet; the driver stops every other worker (SIGSTOP), answers `go`, and lets them
//! go on (SIGCONT) once the worker reports the timing done. Compiles and training, which
//! need no quiet, overlap freely.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::candidate::{Evaluation, Request, Timing, evaluate};

/// What a worker says, one JSON line each.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "message", rename_all = "snake_case")]
pub enum Message {
    /// Ready to time: waits for a `go` line.
    Quiet,
    /// Timing done.
    Timed,
    /// The evaluation's result.
    Done {
        /// What it measured.
        evaluation: Evaluation,
    },
    /// The evaluation failed with an error (the worker itself is fine).
    Failed {
        /// The error.
        error: String,
    },
}

/// The worker's side: reads one request from `input`, evaluates it and writes the messages to
/// `output`. Fails only if the pipes do.
pub fn serve(input: &mut dyn BufRead, output: &mut dyn Write) -> std::io::Result<()> {
    let mut line = String::new();
    input.read_line(&mut line)?;
    let request: Request = match serde_json::from_str(&line) {
        Ok(request) => request,
        Err(e) => return send(output, &Message::Failed { error: format!("bad request: {e}") }),
    };
    // The callback cannot return errors; a broken pipe shows in the final send.
    let mut timing = |moment: Timing| match moment {
        Timing::Begin => {
            let _ = send(&mut *output, &Message::Quiet);
            let mut go = String::new();
            let _ = input.read_line(&mut go);
        }
        Timing::End => {
            let _ = send(&mut *output, &Message::Timed);
        }
    };
    let message = match evaluate(&request, &mut timing) {
        Ok(evaluation) => Message::Done { evaluation },
        Err(e) => Message::Failed { error: e.to_string() },
    };
    send(output, &message)
}

fn send(output: &mut dyn Write, message: &Message) -> std::io::Result<()> {
    writeln!(output, "{}", serde_json::to_string(message).expect("messages serialize"))?;
    output.flush()
}

/// How an evaluation ended, as the driver sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Done {
    /// The id given to [`Workers::start`].
    pub id: usize,
    /// The evaluation, or why there is none.
    pub result: Result<Evaluation, String>,
}

/// Runs evaluations: worker processes here ([`Workers`]) or tasks on a Ray cluster
/// ([`crate::ray::RayWorkers`]).
pub trait Executor {
    /// Whether another evaluation may start now.
    fn free(&self) -> bool;
    /// Starts evaluating `request`; `id` names it in [`Done`]. One that cannot start at all
    /// is reported as done with that error.
    fn start(&mut self, id: usize, request: &Request) -> Option<Done>;
    /// Waits up to `timeout` for an evaluation to end; `None` if none ended.
    fn next(&mut self, timeout: Duration) -> Option<Done>;
}

/// A running worker.
struct Running {
    id: usize,
    child: Child,
    /// Closed once the result is in: the worker needs nothing more.
    stdin: Option<ChildStdin>,
    deadline: Instant,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// The thread that reads it, done when the pipe closes.
    stderr_reader: std::thread::JoinHandle<()>,
    result: Option<Result<Evaluation, String>>,
}

/// The driver's side: up to `jobs` workers at a time.
pub struct Workers {
    command: Vec<String>,
    jobs: usize,
    limit: Duration,
    running: Vec<Running>,
    lines: Receiver<(usize, Option<String>)>,
    sender: Sender<(usize, Option<String>)>,
    /// The worker timing now, when it began, and those waiting to.
    timing: Option<(usize, Instant)>,
    waiting: VecDeque<usize>,
}

/// How much of a crashed worker's stderr to keep for its error.
const STDERR_TAIL: usize = 2000;

impl Workers {
    /// Workers run `command` (program and arguments), at most `jobs` at a time, each
    /// killed after `limit` (not counting time it was stopped for another's timing).
    pub fn new(command: Vec<String>, jobs: usize, limit: Duration) -> Workers {
        let (sender, lines) = channel();
        Workers {
            command,
            jobs: jobs.max(1),
            limit,
            running: Vec::new(),
            lines,
            sender,
            timing: None,
            waiting: VecDeque::new(),
        }
    }

    /// How many are running.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Kills every worker (when the search stops early).
    pub fn kill_all(&mut self) {
        for mut worker in self.running.drain(..) {
            let _ = worker.child.kill();
            let _ = worker.child.wait();
        }
    }

    fn heard(&mut self, id: usize, line: &str) {
        let Some(at) = self.running.iter().position(|w| w.id == id) else { return };
        match serde_json::from_str::<Message>(line) {
            Ok(Message::Quiet) => {
                self.waiting.push_back(id);
                self.grant_quiet();
            }
            Ok(Message::Timed) => self.end_quiet(id),
            Ok(Message::Done { evaluation }) => self.conclude(at, Ok(evaluation)),
            Ok(Message::Failed { error }) => self.conclude(at, Err(error)),
            // Anything else on stdout (a library's stray print) is not protocol.
            Err(_) => {}
        }
    }

    fn conclude(&mut self, at: usize, result: Result<Evaluation, String>) {
        let worker = &mut self.running[at];
        worker.result = Some(result);
        worker.stdin = None;
    }

    /// Lets the first waiting worker time, with every other worker stopped.
    fn grant_quiet(&mut self) {
        if self.timing.is_some() {
            return;
        }
        let Some(id) = self.waiting.pop_front() else { return };
        self.signal_others(id, Signal::SIGSTOP);
        if let Some(stdin) = self.running.iter_mut().find(|w| w.id == id).and_then(|w| w.stdin.as_mut()) {
            let _ = writeln!(stdin, "go").and_then(|()| stdin.flush());
        }
        self.timing = Some((id, Instant::now()));
    }

    /// Lets the others go on after `id`'s timing (or its death), and the next waiter time.
    fn end_quiet(&mut self, id: usize) {
        self.waiting.retain(|&w| w != id);
        let Some((timing, since)) = self.timing else { return };
        if timing != id {
            return;
        }
        let stopped = since.elapsed();
        for worker in self.running.iter_mut().filter(|w| w.id != id) {
            worker.deadline += stopped;
        }
        self.signal_others(id, Signal::SIGCONT);
        self.timing = None;
        self.grant_quiet();
    }

    fn signal_others(&self, id: usize, signal: Signal) {
        for worker in self.running.iter().filter(|w| w.id != id) {
            let _ = kill(Pid::from_raw(worker.child.id() as i32), signal);
        }
    }

    /// A worker's stdout closed: collects its exit and its result (unless it was killed
    /// already for running over time).
    fn reap(&mut self, id: usize) -> Option<Done> {
        let at = self.running.iter().position(|w| w.id == id)?;
        let mut worker = self.running.swap_remove(at);
        let status = worker.child.wait();
        self.end_quiet(id);
        let result = worker.result.take().unwrap_or_else(|| {
            // Its last words may still be in the pipe: give the reader a moment to take them
            // (not forever: a process the worker started may hold the pipe open).
            let until = Instant::now() + Duration::from_secs(1);
            while !worker.stderr_reader.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
            let stderr = worker.stderr.lock().unwrap_or_else(PoisonError::into_inner);
            let stderr = String::from_utf8_lossy(&stderr);
            Err(format!("the worker died ({status}) without a result: {}", stderr.trim()))
        });
        Some(Done { id, result })
    }

    /// Kills the first worker past its deadline (its stdout then closes, but it is reported
    /// here, with the reason).
    fn kill_overdue(&mut self) -> Option<Done> {
        let now = Instant::now();
        let at = self
            .running
            .iter()
            .position(|w| now >= w.deadline && self.timing.is_none_or(|(t, _)| t == w.id))?;
        let mut worker = self.running.swap_remove(at);
        let _ = worker.child.kill();
        let _ = worker.child.wait();
        let id = worker.id;
        self.end_quiet(id);
        Some(Done { id, result: Err(format!("timed out after {:.0} s", self.limit.as_secs_f64())) })
    }
}

impl Executor for Workers {
    /// Whether another worker may start now: a slot is free and no one is timing.
    fn free(&self) -> bool {
        self.running.len() < self.jobs && self.timing.is_none()
    }

    /// Starts a worker on `request`; `id` names it in [`Done`]. A worker that cannot be
    /// started at all is reported as done with that error.
    fn start(&mut self, id: usize, request: &Request) -> Option<Done> {
        let fail = |e: std::io::Error| Some(Done { id, result: Err(format!("cannot start a worker: {e}")) });
        let mut child = match Command::new(&self.command[0])
            .args(&self.command[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => return fail(e),
        };
        let mut stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let sender = self.sender.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send((id, Some(line))).is_err() {
                    return;
                }
            }
            let _ = sender.send((id, None));
        });
        let tail = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&tail);
        let stderr_reader = std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n @ 1..) = stderr.read(&mut buffer) {
                let mut kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
                kept.extend_from_slice(&buffer[..n]);
                let excess = kept.len().saturating_sub(STDERR_TAIL);
                kept.drain(..excess);
            }
        });
        let line = serde_json::to_string(request).expect("requests serialize");
        if let Err(e) = writeln!(stdin, "{line}").and_then(|()| stdin.flush()) {
            let _ = child.kill();
            let _ = child.wait();
            return fail(e);
        }
        let deadline = Instant::now() + self.limit;
        self.running.push(Running {
            id,
            child,
            stdin: Some(stdin),
            deadline,
            stderr: tail,
            stderr_reader,
            result: None,
        });
        None
    }

    /// Waits up to `timeout` for an evaluation to end, serving the workers' requests for
    /// quiet meanwhile; `None` if none ended.
    fn next(&mut self, timeout: Duration) -> Option<Done> {
        let until = Instant::now() + timeout;
        loop {
            if let Some(done) = self.kill_overdue() {
                return Some(done);
            }
            let wait = until.saturating_duration_since(Instant::now()).min(Duration::from_millis(200));
            match self.lines.recv_timeout(wait) {
                Ok((id, Some(line))) => self.heard(id, &line),
                Ok((id, None)) => {
                    if let Some(done) = self.reap(id) {
                        return Some(done);
                    }
                }
                Err(RecvTimeoutError::Timeout) if Instant::now() >= until => return None,
                Err(_) => {}
            }
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.kill_all();
    }
}
