//! The driver's side of the worker protocol, with shell scripts standing in for workers: a
//! result comes back, a crash and a hang become failed evaluations with their reasons, and
//! while one worker times its network the others are stopped.

use std::time::{Duration, Instant};

use search::candidate::{Evaluation, Recipe, Request, Stage};
use search::worker::{Done, Executor, Message, Workers};

fn request() -> Request {
    Request {
        network: String::new(),
        file: "t.ron".into(),
        stage: Stage::Long,
        data: "synthetic".into(),
        split: Some("0.5".into()),
        recipe: Recipe::default(),
        threads: 1,
        latency: None,
        train: true,
    }
}

fn evaluation(accuracy: f64) -> Evaluation {
    Evaluation {
        params: 10,
        macs: 20,
        latency: None,
        proxies: None,
        accuracy,
        loss: 0.5,
        train_loss: 0.6,
        compile_seconds: 1.0,
        train_seconds: 2.0,
    }
}

fn done_line(accuracy: f64) -> String {
    serde_json::to_string(&Message::Done { evaluation: evaluation(accuracy) }).unwrap()
}

fn script(body: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), body.into()]
}

fn wait_all(workers: &mut Workers, count: usize) -> Vec<Done> {
    let mut done = Vec::new();
    let until = Instant::now() + Duration::from_secs(30);
    while done.len() < count && Instant::now() < until {
        done.extend(workers.next(Duration::from_millis(500)));
    }
    done.sort_by_key(|d| d.id);
    done
}

#[test]
fn a_result_comes_back() {
    let mut workers = Workers::new(
        script(&format!("read request; echo '{}'", done_line(0.75))),
        2,
        Duration::from_secs(20),
    );
    assert!(workers.start(7, &request()).is_none());
    let done = wait_all(&mut workers, 1);
    assert_eq!(done, [Done { id: 7, result: Ok(evaluation(0.75)) }]);
    assert_eq!(workers.running(), 0);
}

#[test]
fn a_crash_fails_with_its_stderr() {
    let mut workers = Workers::new(
        script("read request; echo 'out of cheese' >&2; kill -ABRT $$"),
        1,
        Duration::from_secs(20),
    );
    workers.start(0, &request());
    let done = wait_all(&mut workers, 1);
    let error = done[0].result.clone().unwrap_err();
    assert!(error.contains("out of cheese") && error.contains("died"), "{error}");
}

#[test]
fn a_hang_is_killed_at_the_limit() {
    let mut workers = Workers::new(script("read request; sleep 60"), 1, Duration::from_millis(800));
    let start = Instant::now();
    workers.start(0, &request());
    let done = wait_all(&mut workers, 1);
    assert!(start.elapsed() < Duration::from_secs(10));
    let error = done[0].result.clone().unwrap_err();
    assert!(error.contains("timed out"), "{error}");
}

#[test]
fn a_worker_without_a_program_fails_its_evaluation() {
    let mut workers = Workers::new(vec!["/nonexistent/archc".into()], 1, Duration::from_secs(5));
    let done = workers.start(3, &request()).expect("reported at once");
    assert!(done.result.unwrap_err().contains("cannot start a worker"));
}

#[test]
fn others_are_stopped_while_one_times() {
    let dir = tempfile::tempdir().unwrap();
    let ticks = dir.path().join("ticks");
    let window = dir.path().join("window");
    let quiet = serde_json::to_string(&Message::Quiet).unwrap();
    let timed = serde_json::to_string(&Message::Timed).unwrap();
    // The first worker to start ticks into a file every 20 ms for 3 s; the second waits a
    // little, asks for quiet, and writes down the window in which it had it.
    let body = format!(
        r#"read request
if mkdir {dir}/first 2>/dev/null; then
  i=0; while [ $i -lt 150 ]; do date +%s%N >> {ticks}; sleep 0.02; i=$((i+1)); done
else
  sleep 0.5; echo '{quiet}'; read go; date +%s%N >> {window}; sleep 1; date +%s%N >> {window}; echo '{timed}'
fi
echo '{done}'"#,
        dir = dir.path().display(),
        ticks = ticks.display(),
        window = window.display(),
        done = done_line(0.5),
    );
    let mut workers = Workers::new(script(&body), 2, Duration::from_secs(30));
    workers.start(0, &request());
    std::thread::sleep(Duration::from_millis(100));
    workers.start(1, &request());
    let done = wait_all(&mut workers, 2);
    assert!(done.iter().all(|d| d.result.is_ok()), "{done:?}");
    let read = |path: &std::path::Path| -> Vec<u128> {
        std::fs::read_to_string(path).unwrap().lines().map(|l| l.parse().unwrap()).collect()
    };
    let (ticks, window) = (read(&ticks), read(&window));
    let (begin, end) = (window[0], window[1]);
    assert!(ticks.len() > 20, "the first worker ran");
    let inside = ticks.iter().filter(|&&t| t > begin && t < end).count();
    assert_eq!(inside, 0, "the first worker ticked {inside} times while the second timed");
    assert!(ticks.iter().any(|&t| t > end), "the first worker went on afterwards");
}
