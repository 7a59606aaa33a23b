//! The search loop: a strategy proposes networks from a space, worker processes measure them
//! (latency on this machine, accuracy after a short training), the journal records every
//! event, and the networks on or near the front get a longer training at the end. A killed
//! search resumes from its journal: the strategy is replayed ask by ask, finished
//! evaluations are read back, and only unfinished ones run again.

mod output;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::candidate::{Evaluation, LatencyProtocol, Recipe, Request, Stage};
use crate::journal::{Event, Journal, key};
use crate::ray::{RayOptions, RayWorkers};
use crate::space::Space;
use crate::strategy::{self, Genome, Outcome, Score, StrategyKind, pareto};
use crate::worker::{Done, Executor, Workers};
use crate::{Error, Result, fingerprint};

pub use output::{Beat, Summary};

/// How to search.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Which strategy, and its seed.
    pub strategy: StrategyKind,
    /// Seed of the strategy.
    pub seed: u64,
    /// Wall time for the whole search, the final training included.
    pub budget: Duration,
    /// Stop proposing after this many candidates (for reproducible runs).
    pub max_candidates: Option<usize>,
    /// The data (`archc train --data`) and its split.
    pub data: String,
    /// The train/validation split; `None`: the data set's own test part validates.
    pub split: Option<String>,
    /// The short training every candidate gets.
    pub recipe: Recipe,
    /// Epochs of the longer training of the networks on or near the front and of the
    /// baselines (0: none).
    pub long_epochs: usize,
    /// How many candidates get the longer training.
    pub finalists: usize,
    /// How latencies are taken.
    pub latency: LatencyProtocol,
    /// Constraints: candidates beyond them are infeasible.
    pub max_latency_ms: Option<f64>,
    /// Largest parameter count.
    pub max_params: Option<u64>,
    /// Evaluations at a time, and training threads of each.
    pub jobs: usize,
    /// Training threads per evaluation.
    pub threads: usize,
    /// Time limit of one evaluation.
    pub limit: Duration,
    /// The worker command: program and arguments (`archc search-worker`).
    pub worker: Vec<String>,
    /// Where the journal and the results go.
    pub out: PathBuf,
    /// Where evaluations run: worker processes here (`None`) or tasks on a Ray cluster.
    pub ray: Option<RayOptions>,
    /// Whether to continue the search journalled in `out` (its budget and its asks); without,
    /// a new search starts there, reusing the evaluations the journal holds.
    pub resume: bool,
}

/// Where a search is, for progress lines.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    /// `"search"` while candidates are proposed, `"final"` during the longer training.
    pub phase: &'static str,
    /// Candidates evaluated (failed ones included) and how many failed.
    pub done: usize,
    /// Failed evaluations.
    pub failed: usize,
    /// The best validation accuracy so far.
    pub best_accuracy: Option<f64>,
    /// Candidates on the current front.
    pub front: usize,
    /// Search time so far (across resumptions).
    pub elapsed: Duration,
    /// The budget.
    pub budget: Duration,
}

/// One network of the search: a candidate or a baseline.
#[derive(Clone, Debug)]
struct Item {
    name: String,
    /// The candidate's genome; `None` for a baseline.
    genome: Option<Genome>,
    /// The network's RON text and the file it names in errors.
    network: Option<String>,
    file: String,
    /// The IR at batch 1, which (with the settings) keys its evaluations.
    ir: String,
    /// Why the network could not even be built.
    error: Option<String>,
    short: Option<std::result::Result<Evaluation, String>>,
    long: Option<std::result::Result<Evaluation, String>>,
}

impl Item {
    /// An item from its network as built (graph and text), or the reason it does not build.
    fn new(
        name: String,
        genome: Option<Genome>,
        file: String,
        built: std::result::Result<(ir::Graph, String), String>,
    ) -> Item {
        let (network, ir, error) = match built {
            Ok((graph, text)) => (Some(text), ir::print::to_text(&graph), None),
            Err(error) => (None, format!("unbuildable: {error}"), Some(error)),
        };
        Item { name, genome, network, file, ir, error, short: None, long: None }
    }

    fn set_outcome(&mut self, stage: Stage, outcome: std::result::Result<Evaluation, String>) {
        match stage {
            Stage::Short => self.short = Some(outcome),
            Stage::Long => self.long = Some(outcome),
        }
    }

    fn outcome(&self, stage: Stage) -> &Option<std::result::Result<Evaluation, String>> {
        match stage {
            Stage::Short => &self.short,
            Stage::Long => &self.long,
        }
    }
}

/// Runs (or resumes) the search of `space`, reporting progress to `on_status`, and writes its
/// results into `settings.out`.
pub fn search(space: &Space, settings: &Settings, on_status: &mut dyn FnMut(&Status)) -> Result<Summary> {
    let mut run = Run::open(space, settings)?;
    run.search_phase(on_status)?;
    run.final_phase(on_status)?;
    output::write(space, settings, &run.items, &run.device, run.elapsed())
}

/// A search in progress.
struct Run<'a> {
    space: &'a Space,
    settings: &'a Settings,
    device: String,
    journal: Journal,
    /// Outcomes read from the journal, by evaluation key.
    cache: HashMap<String, std::result::Result<Evaluation, String>>,
    /// The genomes asked before a resumption, in order.
    replay: Vec<Genome>,
    items: Vec<Item>,
    /// Evaluations waiting for a worker: `(item, stage)`.
    queue: VecDeque<(usize, Stage)>,
    workers: Box<dyn Executor>,
    /// Worker ids to what they evaluate, and when they started.
    running: HashMap<usize, (usize, Stage, Instant)>,
    next_worker: usize,
    strategy: Box<dyn strategy::Strategy>,
    /// Candidates asked but not yet told, in ask order.
    untold: VecDeque<usize>,
    asked: usize,
    started: Instant,
    elapsed_before: Duration,
    /// Wall seconds of finished short evaluations, and their training seconds, by item.
    short_walls: HashMap<usize, (f64, f64)>,
}

impl<'a> Run<'a> {
    fn open(space: &'a Space, settings: &'a Settings) -> Result<Run<'a>> {
        std::fs::create_dir_all(&settings.out)
            .map_err(|source| Error::Io { path: settings.out.display().to_string(), source })?;
        let path = settings.out.join("journal.jsonl");
        let shown = path.display().to_string();
        let (mut journal, events) = Journal::open(&path)?;
        let device = fingerprint().to_string();
        let identity = identity(space, settings);
        let mut replay = Vec::new();
        let mut cache = HashMap::new();
        let mut elapsed_before = Duration::ZERO;
        let mut journalled = None;
        for event in events {
            match event {
                // A new search: its asks and its time are its own; the evaluations stay.
                Event::Start { search, resume: false, .. } => {
                    journalled = Some(search);
                    replay.clear();
                    elapsed_before = Duration::ZERO;
                }
                Event::Start { .. } => {}
                Event::Asked { genome, .. } => replay.push(genome),
                Event::Finished { key, evaluation, .. } => {
                    cache.insert(key, Ok(evaluation));
                }
                Event::Failed { key, error, .. } => {
                    cache.insert(key, Err(error));
                }
                Event::Elapsed { seconds } => elapsed_before = Duration::from_secs_f64(seconds),
            }
        }
        if !settings.resume {
            replay.clear();
            elapsed_before = Duration::ZERO;
        } else if journalled.as_ref().is_some_and(|j| *j != identity) {
            return Err(Error::Journal {
                path: shown,
                line: 0,
                message: format!(
                    "--resume: the journal is of another search ({}); this one is {identity}",
                    journalled.unwrap_or_default()
                ),
            });
        }
        journal.append(&Event::Start {
            search: identity,
            resume: settings.resume,
            device: device.clone(),
        })?;
        let workers: Box<dyn Executor> = match &settings.ray {
            None => Box::new(Workers::new(settings.worker.clone(), settings.jobs, settings.limit)),
            Some(ray) => Box::new(RayWorkers::connect(
                ray,
                Path::new(&settings.worker[0]),
                &settings.out,
                settings.jobs,
                settings.threads,
                settings.limit,
            )?),
        };
        let mut run = Run {
            space,
            settings,
            device,
            journal,
            cache,
            replay,
            items: Vec::new(),
            queue: VecDeque::new(),
            workers,
            running: HashMap::new(),
            next_worker: 0,
            strategy: strategy::strategy(settings.strategy, &space.genes(), settings.seed),
            untold: VecDeque::new(),
            asked: 0,
            started: Instant::now(),
            elapsed_before,
            short_walls: HashMap::new(),
        };
        for path in space.baselines() {
            let item = baseline(path);
            run.add(item, Stage::Short)?;
        }
        Ok(run)
    }

    fn elapsed(&self) -> Duration {
        self.elapsed_before + self.started.elapsed()
    }

    /// Proposes, evaluates and tells candidates until the budget (less the final training's
    /// share) or the candidate count is spent, then lets the last ones finish.
    fn search_phase(&mut self, on_status: &mut dyn FnMut(&Status)) -> Result<()> {
        loop {
            while self.untold.len() < self.settings.jobs && self.may_ask() {
                self.ask()?;
                self.tell_finished()?;
            }
            self.launch()?;
            if self.running.is_empty() && self.queue.is_empty() {
                if self.untold.is_empty() && !self.may_ask() {
                    return Ok(());
                }
                continue;
            }
            self.wait(on_status, "search")?;
            self.tell_finished()?;
        }
    }

    /// Trains the networks on or near the front, and the baselines, for longer.
    fn final_phase(&mut self, on_status: &mut dyn FnMut(&Status)) -> Result<()> {
        if self.settings.long_epochs == 0 {
            return Ok(());
        }
        let chosen = finalists(&self.items, self.settings.finalists);
        let baselines: Vec<usize> =
            (0..self.items.len()).filter(|&i| self.items[i].genome.is_none()).collect();
        for i in baselines.into_iter().chain(chosen) {
            if matches!(self.items[i].short, Some(Ok(_))) {
                self.enqueue(i, Stage::Long)?;
            }
        }
        while !(self.running.is_empty() && self.queue.is_empty()) {
            self.launch()?;
            self.wait(on_status, "final")?;
        }
        Ok(())
    }

    fn may_ask(&self) -> bool {
        let settings = self.settings;
        if settings.max_candidates.is_some_and(|max| self.asked >= max) {
            return false;
        }
        self.elapsed() + self.final_estimate() < settings.budget
    }

    /// How long the rest will take once no more candidates are asked: the evaluations in
    /// flight, and the final training, estimated from the short evaluations' times: each
    /// baseline's own, a candidate's on average. The final evaluations share the workers, but
    /// none ends before the longest.
    fn final_estimate(&self) -> Duration {
        let walls: Vec<(f64, f64)> = self
            .short_walls
            .iter()
            .filter(|(at, _)| self.items[**at].genome.is_some())
            .map(|(_, &w)| w)
            .collect();
        if walls.is_empty() {
            return Duration::ZERO;
        }
        let n = walls.len() as f64;
        let mean = |f: fn(&(f64, f64)) -> f64| walls.iter().map(f).sum::<f64>() / n;
        let (wall, train) = (mean(|w| w.0), mean(|w| w.1));
        let jobs = self.settings.jobs as f64;
        let in_flight = self.untold.len() as f64 * wall / jobs;
        if self.settings.long_epochs == 0 {
            return Duration::from_secs_f64(in_flight);
        }
        let longer = (self.settings.long_epochs as f64 / self.settings.recipe.epochs as f64 - 1.0).max(0.0);
        let mut finals: Vec<f64> = vec![wall + train * longer; self.settings.finalists];
        for at in (0..self.items.len()).filter(|&at| self.items[at].genome.is_none()) {
            let (wall, train) = self.short_walls.get(&at).copied().unwrap_or((wall, train));
            finals.push(wall + train * longer);
        }
        let longest = finals.iter().copied().fold(0.0, f64::max);
        Duration::from_secs_f64(in_flight + (finals.iter().sum::<f64>() / jobs).max(longest))
    }

    /// Asks the strategy for a candidate and queues its evaluation (or takes it from the
    /// journal).
    fn ask(&mut self) -> Result<()> {
        let genome = self.strategy.ask();
        let index = self.asked;
        self.asked += 1;
        let name = format!("c{index:03}");
        match self.replay.get(index) {
            Some(logged) if *logged != genome => {
                return Err(Error::Journal {
                    path: self.settings.out.join("journal.jsonl").display().to_string(),
                    line: 0,
                    message: format!(
                        "ask {index} was {logged:?} but the strategy now asks {genome:?}: the space file changed"
                    ),
                });
            }
            Some(_) => {}
            None => {
                self.journal.append(&Event::Asked { index, genome: genome.clone(), name: name.clone() })?
            }
        }
        let item = candidate(self.space, genome, name);
        let at = self.add(item, Stage::Short)?;
        self.untold.push_back(at);
        Ok(())
    }

    /// Adds `item` and queues its `stage` evaluation; returns its index.
    fn add(&mut self, item: Item, stage: Stage) -> Result<usize> {
        self.items.push(item);
        let at = self.items.len() - 1;
        self.enqueue(at, stage)?;
        Ok(at)
    }

    /// Queues an evaluation, unless the journal has its outcome or the network did not build.
    fn enqueue(&mut self, at: usize, stage: Stage) -> Result<()> {
        let key = self.key(at, stage);
        let item = &mut self.items[at];
        let known = match (&item.error, self.cache.get(&key)) {
            (Some(error), _) => Some(Err(error.clone())),
            (None, Some(outcome)) => Some(outcome.clone()),
            (None, None) => None,
        };
        match known {
            Some(outcome) => {
                if item.error.is_some() && !self.cache.contains_key(&key) {
                    let error = item.error.clone().expect("checked");
                    self.journal.append(&Event::Failed { key, stage, name: item.name.clone(), error })?;
                }
                self.items[at].set_outcome(stage, outcome);
            }
            None => self.queue.push_back((at, stage)),
        }
        Ok(())
    }

    fn key(&self, at: usize, stage: Stage) -> String {
        let s = self.settings;
        let recipe = self.recipe(stage);
        let latency =
            serde_json::to_string(&(stage == Stage::Short).then_some(s.latency)).expect("serializes");
        let recipe = serde_json::to_string(&recipe).expect("serializes");
        key(&[
            &self.items[at].ir,
            &self.device,
            &s.data,
            s.split.as_deref().unwrap_or("test"),
            &recipe,
            &latency,
        ])
    }

    fn recipe(&self, stage: Stage) -> Recipe {
        match stage {
            Stage::Short => self.settings.recipe.clone(),
            Stage::Long => Recipe { epochs: self.settings.long_epochs, ..self.settings.recipe.clone() },
        }
    }

    /// Starts queued evaluations while workers are free.
    fn launch(&mut self) -> Result<()> {
        while self.workers.free() {
            let Some((at, stage)) = self.queue.pop_front() else { return Ok(()) };
            let item = &self.items[at];
            let request = Request {
                network: item.network.clone().expect("built items have text"),
                file: item.file.clone(),
                stage,
                data: self.settings.data.clone(),
                split: self.settings.split.clone(),
                recipe: self.recipe(stage),
                threads: self.settings.threads,
                latency: (stage == Stage::Short).then_some(self.settings.latency),
                train: true,
            };
            let id = self.next_worker;
            self.next_worker += 1;
            self.running.insert(id, (at, stage, Instant::now()));
            // A worker that cannot even start fails its evaluation right away.
            if let Some(done) = self.workers.start(id, &request) {
                self.finish(done)?;
            }
        }
        Ok(())
    }

    /// Waits for an evaluation to end (or a second to pass) and records it.
    fn wait(&mut self, on_status: &mut dyn FnMut(&Status), phase: &'static str) -> Result<()> {
        if let Some(done) = self.workers.next(Duration::from_secs(1)) {
            self.finish(done)?;
        }
        on_status(&self.status(phase));
        Ok(())
    }

    fn finish(&mut self, done: Done) -> Result<()> {
        let (at, stage, began) = self.running.remove(&done.id).expect("workers are started here");
        let key = self.key(at, stage);
        let name = self.items[at].name.clone();
        let event = match &done.result {
            Ok(evaluation) => {
                if stage == Stage::Short {
                    self.short_walls.insert(at, (began.elapsed().as_secs_f64(), evaluation.train_seconds));
                }
                Event::Finished { key, stage, name, evaluation: evaluation.clone() }
            }
            Err(error) => Event::Failed { key, stage, name, error: error.clone() },
        };
        self.journal.append(&event)?;
        self.journal.append(&Event::Elapsed { seconds: self.elapsed().as_secs_f64() })?;
        self.items[at].set_outcome(stage, done.result);
        Ok(())
    }

    /// Tells the strategy every candidate at the head of the ask order that has its outcome;
    /// stops at the first still running, so that tells keep the ask order.
    fn tell_finished(&mut self) -> Result<()> {
        while let Some(&at) = self.untold.front() {
            let Some(outcome) = self.items[at].outcome(Stage::Short) else { break };
            let told = match outcome {
                Ok(e) => Outcome::Scored(self.score(e)),
                Err(_) => Outcome::Failed,
            };
            let genome = self.items[at].genome.clone().expect("candidates have genomes");
            self.strategy.tell(&genome, told);
            self.untold.pop_front();
            // One tell, then the next ask (in `search_phase`): the order does not depend
            // on which evaluations happen to finish together.
            if self.untold.len() < self.settings.jobs && self.may_ask() {
                return Ok(());
            }
        }
        Ok(())
    }

    fn score(&self, evaluation: &Evaluation) -> Score {
        score(evaluation, self.settings)
    }

    fn status(&self, phase: &'static str) -> Status {
        let candidates: Vec<&Item> = self.items.iter().filter(|i| i.genome.is_some()).collect();
        let done = candidates.iter().filter(|i| i.short.is_some()).count();
        let failed = candidates.iter().filter(|i| matches!(i.short, Some(Err(_)))).count();
        let points: Vec<(f64, f64)> = candidates
            .iter()
            .filter_map(|i| i.short.as_ref()?.as_ref().ok())
            .map(|e| self.score(e).point())
            .collect();
        Status {
            phase,
            done,
            failed,
            best_accuracy: points.iter().map(|p| p.0).reduce(f64::max),
            front: pareto::front(&points).len(),
            elapsed: self.elapsed(),
            budget: self.settings.budget,
        }
    }
}

/// The strategy's view of an evaluation.
fn score(evaluation: &Evaluation, settings: &Settings) -> Score {
    let latency = evaluation.latency.as_ref().map_or(f64::INFINITY, |l| l.median_ms);
    let over = |value: f64, limit: Option<f64>| limit.map_or(0.0, |limit| (value / limit - 1.0).max(0.0));
    Score {
        accuracy: evaluation.accuracy,
        latency_ms: latency,
        violation: over(latency, settings.max_latency_ms)
            + over(evaluation.params as f64, settings.max_params.map(|p| p as f64)),
    }
}

/// What makes two searches the same one: everything but the budget and the machine's share.
fn identity(space: &Space, settings: &Settings) -> String {
    let s = settings;
    format!(
        "space {} strategy {} seed {} data {} split {} recipe {} long {}x{} latency {:?} limits {:?}/{:?}",
        space.name(),
        s.strategy,
        s.seed,
        s.data,
        s.split.as_deref().unwrap_or("test"),
        serde_json::to_string(&s.recipe).expect("serializes"),
        s.finalists,
        s.long_epochs,
        s.latency,
        s.max_latency_ms,
        s.max_params,
    )
}

/// A candidate of the space, built (or with the reason it does not build).
fn candidate(space: &Space, genome: Genome, name: String) -> Item {
    let file = format!("{}/{name}", space.name());
    let built = space
        .network_text(&genome, &format!("{}_{name}", space.name()))
        .and_then(|text| Ok((space.build(&genome, 1)?, text)))
        .map_err(|e| e.to_string());
    Item::new(name, Some(genome), file, built)
}

/// A baseline network file.
fn baseline(path: &Path) -> Item {
    let file = path.display().to_string();
    let name = path.file_stem().map_or_else(|| file.clone(), |s| s.to_string_lossy().into_owned());
    let built = std::fs::read_to_string(path).map_err(|e| format!("{file}: {e}")).and_then(|text| {
        let graph =
            ir::from_ron_str(&text, &file, &ir::BuildOptions::default()).map_err(|e| e.to_string())?;
        Ok((graph, text))
    });
    Item::new(name, None, file, built)
}

/// The candidates that get the longer training: the short front, spread evenly over its
/// latencies when it has more than `count`, then the next layers when it has fewer.
fn finalists(items: &[Item], count: usize) -> Vec<usize> {
    let scored: Vec<(usize, (f64, f64))> = items
        .iter()
        .enumerate()
        .filter(|(_, item)| item.genome.is_some())
        .filter_map(|(i, item)| {
            let e = item.short.as_ref()?.as_ref().ok()?;
            Some((i, (e.accuracy, e.latency.as_ref()?.median_ms)))
        })
        .collect();
    let points: Vec<(f64, f64)> = scored.iter().map(|s| s.1).collect();
    let mut chosen = Vec::new();
    for mut layer in pareto::nondominated_sort(&points) {
        layer.sort_by(|&a, &b| points[a].1.total_cmp(&points[b].1));
        let room = count - chosen.len();
        if layer.len() <= room {
            chosen.extend(layer.iter().map(|&i| scored[i].0));
        } else {
            // Evenly spaced positions along the layer, both ends included.
            let last = layer.len() - 1;
            let picks = (0..room).map(|k| if room == 1 { last } else { k * last / (room - 1) });
            chosen.extend(picks.map(|k| scored[layer[k]].0));
        }
        if chosen.len() >= count {
            break;
        }
    }
    chosen.dedup();
    chosen
}
