//! Compiled training: a training graph (`passes::autodiff`) becomes one native function that
//! runs forward, backward and the SGD step on a batch.
//!
//! The kernels read parameters from the weights blob in the layouts they pre-pack at compile
//! time, but training changes the parameters every step. Every blob element the lowering
//! takes from a parameter is a copy of one parameter element (or padding), so lowering the
//! graph a second time with each parameter element replaced by its own index tells which
//! state element each blob element copies; a step first refreshes those, then runs, then
//! writes the new parameters, momentum buffers and running statistics back into the state.

use std::collections::BTreeMap;
use std::time::Instant;

use ir::{Tensor, Weights};
use passes::autodiff::Training;

use crate::{CompiledModel, Error, JIT_SYMBOL, Target, lower};

/// Parameter elements the index trick can number exactly in f32.
const MAX_STATE: usize = 1 << 24;

/// A training graph compiled for this machine, with its state (parameters, momentum buffers,
/// running statistics).
pub struct CompiledTraining {
    model: CompiledModel,
    /// The state's tensors in one array, by name: `(offset, shape)`.
    state: Vec<f32>,
    layout: BTreeMap<String, (usize, Vec<usize>)>,
    /// `(blob index, state index)` of every blob element that copies a parameter.
    refresh: Vec<(usize, usize)>,
    /// `(output offset, state offset, length)` of every tensor a step replaces.
    write_back: Vec<(usize, usize, usize)>,
    /// Offsets of the loss and the logits in the outputs, and the outputs' total length.
    loss: (usize, usize),
    logits: (usize, usize),
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
        let start = Instant::now();
        let graph = &training.graph;
        state.check(graph).map_err(|e| Error::Unsupported(e.to_string()))?;
        let plan = passes::plan::plan(graph, false);
        let target = Target::host();
        let mut layout = BTreeMap::new();
        let mut values = Vec::new();
        for (name, _, spec) in ir::weights::expected_params(graph) {
            layout.insert(name.clone(), (values.len(), spec.shape.clone()));
            values.extend_from_slice(&state.get(&name).expect("checked").data);
        }
        if values.len() >= MAX_STATE {
            return Err(Error::Unsupported(format!(
                "training {} parameters (at most {MAX_STATE})",
                values.len()
            )));
        }
        let mut numbered = Weights::default();
        for (name, (offset, shape)) in &layout {
            let n: usize = shape.iter().product();
            numbered
                .insert(name.clone(), Tensor::new(shape, (0..n).map(|i| (offset + i + 1) as f32).collect()));
        }
        let lowered = lower(graph, state, &plan, target.isa(), JIT_SYMBOL)?;
        let indices = lower(graph, &numbered, &plan, target.isa(), JIT_SYMBOL)?.weights;
        let mut refresh = Vec::new();
        for (i, (&value, &index)) in lowered.weights.iter().zip(&indices).enumerate() {
            if index == 0.0 {
                continue;
            }
            let from = index as usize - 1;
            // A kernel that computed with the parameters, instead of copying them, shows here.
            if values.get(from) != Some(&value) || index.fract() != 0.0 {
                return Err(Error::Unsupported(format!(
                    "training {}: a kernel derives its blob from the parameters",
                    graph.name()
                )));
            }
            refresh.push((i, from));
        }
        let offsets = |shapes: &[Vec<usize>]| {
            let mut at = 0;
            shapes
                .iter()
                .map(|s| {
                    let here = at;
                    at += s.iter().product::<usize>();
                    (here, at - here)
                })
                .collect::<Vec<_>>()
        };
        let outputs = offsets(&lowered.outputs);
        let batch = lowered.inputs[0][0];
        let input_len: usize = lowered.inputs.iter().map(|s| s.iter().product::<usize>()).sum();
        let output_len: usize = lowered.outputs.iter().map(|s| s.iter().product::<usize>()).sum();
        let write_back = training
            .state
            .iter()
            .map(|(name, index)| {
                let (at, len) = outputs[*index];
                (at, layout[name].0, len)
            })
            .collect();
        let model = CompiledModel::load(lowered, &target, llvm_level, start)?;
        Ok(CompiledTraining {
            model,
            state: values,
            layout,
            refresh,
            write_back,
            loss: outputs[training.loss],
            logits: outputs[training.logits],
            input: vec![0.0; input_len],
            output: vec![0.0; output_len],
            batch,
        })
    }

    /// Sets the number of threads steps use.
    pub fn set_threads(&mut self, threads: usize) {
        self.model.set_threads(threads);
    }

    /// The batch size the step was compiled for.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Runs one step on `images` (NCHW, the compiled batch) with class `labels` and learning
    /// rate `lr`: forward, backward, SGD; the state is updated in place.
    pub fn step(&mut self, images: &[f32], labels: &[u32], lr: f32) -> StepResult {
        assert_eq!(labels.len(), self.batch, "one label per item");
        assert_eq!(images.len() + labels.len() + 1, self.input.len(), "images of the compiled shape");
        self.input[..images.len()].copy_from_slice(images);
        for (slot, &label) in self.input[images.len()..].iter_mut().zip(labels) {
            *slot = label as f32;
        }
        *self.input.last_mut().expect("the learning rate") = lr;
        let blob = self.model.weights_mut();
        for &(i, from) in &self.refresh {
            blob[i] = self.state[from];
        }
        self.model.run_into(&self.input, &mut self.output);
        for &(from, to, len) in &self.write_back {
            self.state[to..to + len].copy_from_slice(&self.output[from..from + len]);
        }
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
        let mut weights = Weights::default();
        for (name, (offset, shape)) in &self.layout {
            let n: usize = shape.iter().product();
            weights.insert(name.clone(), Tensor::new(shape, self.state[*offset..offset + n].to_vec()));
        }
        weights
    }
}

/// The index of the largest value (the first, on ties).
fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().fold(0, |best, (i, &v)| if v > row[best] { i } else { best })
}
