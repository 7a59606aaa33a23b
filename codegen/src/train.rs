//! Compiled training: a training graph (`passes::autodiff`) becomes one native function that
//! runs forward, backward and the SGD step on a batch. Its state (parameters, momentum
//! buffers, running statistics) lives in one flat array: a step refreshes the weights blob
//! from it ([`Reloadable`]), runs, and writes the new state back.

use ir::Weights;
use passes::autodiff::Training;

use crate::{Error, Reloadable};

/// A training graph compiled for this machine, with its state.
pub struct CompiledTraining {
    model: Reloadable,
    state: Vec<f32>,
    /// `(output offset, state offset, length)` of every tensor a step replaces.
    write_back: Vec<(usize, usize, usize)>,
    /// Offsets and lengths of the loss and the logits in the outputs.
    loss: (usize, usize),
    logits: (usize, usize),
    /// Names and output spans of the parameter gradients, and the input gradient's span.
    gradients: Vec<(String, (usize, usize))>,
    input_gradient: Option<(usize, usize)>,
    input: Vec<f32>,
    output: Vec<f32>,
    batch: usize,
}

/// What one step reports.
#[derive(Clone, Debug, PartialEq)]
pub struct StepResult {
    /// The batch's mean loss before the step.
    pub loss: f32,
    /// Items whose largest logit was their label's, before the step.
    pub correct: usize,
}

impl CompiledTraining {
    /// Compiles `training` for the host, starting from `state` (the network's weights with
    /// momentum buffers: `Training::initial_state`).
    pub fn compile(training: &Training, state: &Weights, llvm_level: u8) -> Result<CompiledTraining, Error> {
        let graph = &training.graph;
        state.check(graph).map_err(|e| Error::Unsupported(e.to_string()))?;
        // Channel views: the concats and splits of the forward and backward passes copy nothing.
        let plan = passes::plan::plan(graph, true);
        let model = Reloadable::compile(graph, state, &plan, llvm_level)?;
        let offsets: Vec<(usize, usize)> = model
            .outputs()
            .iter()
            .scan(0, |at, shape| {
                let len = shape.iter().product::<usize>();
                *at += len;
                Some((*at - len, len))
            })
            .collect();
        let write_back = training
            .state
            .iter()
            .map(|(name, index)| {
                let (at, len) = offsets[*index];
                let (to, _) = model.span(name).expect("the state names graph parameters");
                (at, to, len)
            })
            .collect();
        let total = |shapes: &[Vec<usize>]| shapes.iter().map(|s| s.iter().product::<usize>()).sum::<usize>();
        Ok(CompiledTraining {
            state: model.flatten(state),
            write_back,
            loss: offsets[training.loss],
            logits: offsets[training.logits],
            gradients: training
                .gradients
                .iter()
                .map(|(name, index)| (name.clone(), offsets[*index]))
                .collect(),
            input_gradient: training.input_gradient.map(|index| offsets[index]),
            input: vec![0.0; total(model.inputs())],
            output: vec![0.0; total(model.outputs())],
            batch: model.inputs()[0][0],
            model,
        })
    }

    /// Sets the number of threads steps use.
    pub fn set_threads(&mut self, threads: usize) {
        self.model.model().set_threads(threads);
    }

    /// The batch size the step was compiled for.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Runs one step on `images` (NCHW, the compiled batch) with class `labels` and learning
    /// rate `lr`: forward, backward, SGD; the state is updated in place.
    pub fn step(&mut self, images: &[f32], labels: &[u32], lr: f32) -> StepResult {
        self.run(images, labels, lr);
        for &(from, to, len) in &self.write_back {
            self.state[to..to + len].copy_from_slice(&self.output[from..from + len]);
        }
        self.result(labels)
    }

    /// Runs the step's forward and backward passes on a batch without changing the state
    /// (learning rate 0, nothing written back): the gradients at the current weights.
    pub fn probe(&mut self, images: &[f32], labels: &[u32]) -> Probe {
        self.run(images, labels, 0.0);
        let span = |(at, len): (usize, usize)| self.output[at..at + len].to_vec();
        let mut gradients = Weights::default();
        for (name, at) in &self.gradients {
            let shape = self.model.shape(name).expect("gradients are named after parameters");
            gradients.insert(name.clone(), ir::Tensor::new(shape, span(*at)));
        }
        Probe { step: self.result(labels), gradients, input_gradient: self.input_gradient.map(span) }
    }

    fn run(&mut self, images: &[f32], labels: &[u32], lr: f32) {
        assert_eq!(labels.len(), self.batch, "one label per item");
        assert_eq!(images.len() + labels.len() + 1, self.input.len(), "images of the compiled shape");
        self.input[..images.len()].copy_from_slice(images);
        for (slot, &label) in self.input[images.len()..].iter_mut().zip(labels) {
            *slot = label as f32;
        }
        *self.input.last_mut().expect("the learning rate") = lr;
        self.model.load_flat(&self.state);
        self.model.model().run_into(&self.input, &mut self.output);
    }

    /// The loss and the correct count of the outputs of the last run.
    fn result(&self, labels: &[u32]) -> StepResult {
        let (at, len) = self.loss;
        let loss = self.output[at..at + len].iter().sum::<f32>() / len as f32;
        let (at, len) = self.logits;
        let classes = len / self.batch;
        let correct = self.output[at..at + len]
            .chunks(classes)
            .zip(labels)
            .filter(|(row, label)| argmax(row) == **label as usize)
            .count();
        StepResult { loss, correct }
    }

    /// The current state: parameters, momentum buffers and running statistics.
    pub fn state(&self) -> Weights {
        self.model.unflatten(&self.state)
    }
}

/// What a [`CompiledTraining::probe`] measured.
#[derive(Clone, Debug)]
pub struct Probe {
    /// The batch's loss and correct count.
    pub step: StepResult,
    /// The loss's gradient with respect to every trainable parameter.
    pub gradients: Weights,
    /// The gradient with respect to the input images, when the training graph has it.
    pub input_gradient: Option<Vec<f32>>,
}

/// The index of the largest value (the first, on ties).
fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().fold(0, |best, (i, &v)| if v > row[best] { i } else { best })
}
