//! Compiled networks whose weights change between runs (training, and evaluating the weights
//! training produced) without compiling again.
//!
//! Kernels read parameters from the weights blob in the layouts they pre-pack at compile
//! time. Every blob element the lowering takes from a parameter is a copy of one parameter
//! element (or padding), so lowering the graph a second time with each parameter element
//! replaced by its own index tells which parameter element each blob element copies.
//! [`Reloadable::set_weights`] then refreshes exactly those.

use std::collections::BTreeMap;
use std::time::Instant;

use ir::{Graph, Tensor, Weights};
use passes::plan::Plan;

use crate::{CompiledModel, Error, JIT_SYMBOL, Target, lower};

/// Parameter elements the index trick can number exactly in f32.
const MAX_PARAMS: usize = 1 << 24;

/// A compiled network whose parameters can be replaced between runs.
pub struct Reloadable {
    model: CompiledModel,
    /// Every parameter's offset in the flat parameter array, and its shape.
    layout: BTreeMap<String, (usize, Vec<usize>)>,
    /// `(blob index, parameter index)` of every blob element that copies a parameter.
    refresh: Vec<(usize, usize)>,
    /// The inputs' and outputs' shapes.
    inputs: Vec<Vec<usize>>,
    outputs: Vec<Vec<usize>>,
}

impl Reloadable {
    /// Compiles `graph` for the host with `weights`, placed by `plan`.
    pub fn compile(
        graph: &Graph,
        weights: &Weights,
        plan: &Plan,
        llvm_level: u8,
    ) -> Result<Reloadable, Error> {
        let start = Instant::now();
        let target = Target::host();
        let mut layout = BTreeMap::new();
        let mut values = Vec::new();
        for (name, _, spec) in ir::weights::expected_params(graph) {
            layout.insert(name.clone(), (values.len(), spec.shape.clone()));
            let tensor =
                weights.get(&name).ok_or_else(|| Error::Unsupported(format!("weights `{name}` missing")))?;
            values.extend_from_slice(&tensor.data);
        }
        if values.len() >= MAX_PARAMS {
            return Err(Error::Unsupported(format!(
                "reloading {} parameters (at most {MAX_PARAMS})",
                values.len()
            )));
        }
        let mut numbered = Weights::default();
        for (name, (offset, shape)) in &layout {
            let n: usize = shape.iter().product();
            numbered
                .insert(name.clone(), Tensor::new(shape, (0..n).map(|i| (offset + i + 1) as f32).collect()));
        }
        let lowered = lower(graph, weights, plan, target.isa(), &crate::schedule::RELOADABLE, JIT_SYMBOL)?;
        let indices =
            lower(graph, &numbered, plan, target.isa(), &crate::schedule::RELOADABLE, JIT_SYMBOL)?.weights;
        let mut refresh = Vec::new();
        for (i, (&value, &index)) in lowered.weights.iter().zip(&indices).enumerate() {
            if index == 0.0 {
                continue;
            }
            let from = index as usize - 1;
            // A kernel that computed with the parameters, instead of copying them, shows here.
            if values.get(from) != Some(&value) || index.fract() != 0.0 {
                return Err(Error::Unsupported(format!(
                    "reloading the weights of {}: a kernel derives its blob from the parameters",
                    graph.name()
                )));
            }
            refresh.push((i, from));
        }
        let (inputs, outputs) = (lowered.inputs.clone(), lowered.outputs.clone());
        let model = CompiledModel::load(lowered, &target, llvm_level, start)?;
        Ok(Reloadable { model, layout, refresh, inputs, outputs })
    }

    /// The parameters in one flat array (for [`Reloadable::load_flat`]), in this model's layout.
    pub fn flatten(&self, weights: &Weights) -> Vec<f32> {
        let mut flat =
            vec![0.0; self.layout.values().map(|(o, s)| o + s.iter().product::<usize>()).max().unwrap_or(0)];
        for (name, (offset, _)) in &self.layout {
            let data = &weights.get(name).expect("the weights hold every parameter").data;
            flat[*offset..offset + data.len()].copy_from_slice(data);
        }
        flat
    }

    /// The tensors of a flat parameter array, by name.
    pub fn unflatten(&self, flat: &[f32]) -> Weights {
        let mut weights = Weights::default();
        for (name, (offset, shape)) in &self.layout {
            let n: usize = shape.iter().product();
            weights.insert(name.clone(), Tensor::new(shape, flat[*offset..offset + n].to_vec()));
        }
        weights
    }

    /// Where parameter `name` sits in the flat array, and how many elements it has.
    pub fn span(&self, name: &str) -> Option<(usize, usize)> {
        self.layout.get(name).map(|(offset, shape)| (*offset, shape.iter().product()))
    }

    /// The shape of parameter `name`.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.layout.get(name).map(|(_, shape)| shape.as_slice())
    }

    /// Replaces the parameters (every one the graph needs) for the next runs.
    pub fn set_weights(&mut self, weights: &Weights) {
        let flat = self.flatten(weights);
        self.load_flat(&flat);
    }

    /// Replaces the parameters from a flat array in this model's layout.
    pub fn load_flat(&mut self, flat: &[f32]) {
        let blob = self.model.weights_mut();
        for &(i, from) in &self.refresh {
            blob[i] = flat[from];
        }
    }

    /// The compiled model, to run.
    pub fn model(&mut self) -> &mut CompiledModel {
        &mut self.model
    }

    /// The inputs' shapes, in the order a run takes them.
    pub fn inputs(&self) -> &[Vec<usize>] {
        &self.inputs
    }

    /// The outputs' shapes, in the order a run gives them.
    pub fn outputs(&self) -> &[Vec<usize>] {
        &self.outputs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compiles network `text` reloadable with seeded weights, gives it other seeded weights,
    /// and checks that it computes what `ir::eval` computes with those.
    fn reloaded_weights_match_eval(text: &str, batch: usize) {
        let graph = ir::from_ron_str(text, "r.ron", &ir::BuildOptions { batch, overrides: vec![] }).unwrap();
        let plan = passes::plan::plan(&graph, false);
        let mut model = Reloadable::compile(&graph, &Weights::seeded(&graph, 1), &plan, 0).unwrap();
        let other = Weights::seeded(&graph, 2);
        model.set_weights(&other);
        let shape = model.inputs()[0].clone();
        let numel = shape.iter().product::<usize>();
        let input = Tensor::new(&shape, (0..numel).map(|i| (i % 17) as f32 / 8.0 - 1.0).collect());
        let expected = ir::eval::eval(&graph, &other, std::slice::from_ref(&input)).unwrap();
        let out = Tensor::new(&expected[0].shape, model.model().run(&input.data));
        let err = out.relative_error(&expected[0]);
        assert!(err < 1e-5, "{err}");
    }

    /// A 3x3 stride-1 convolution with 8 channels would take Winograd, whose weights are not
    /// the parameters as they are: a reloadable model computes it directly, and new weights
    /// give what `ir::eval` gives with them.
    #[test]
    fn reloaded_weights_reach_every_kernel() {
        let text = r#"Network(name: "r", input: Image(channels: 8, height: 6, width: 7), body: [
            Conv(out: 8, kernel: 3, bias: true, act: Relu), Conv(out: 5, kernel: 1)])"#;
        reloaded_weights_match_eval(text, 1);
    }

    /// A classifier tail (1x1 conv, pool, linear layer) runs as one kernel that stores the
    /// linear weights transposed: still copies, refreshed with the rest.
    #[test]
    fn reloaded_weights_reach_a_classifier_tail() {
        let text = r#"Network(name: "c", input: Image(channels: 6, height: 5, width: 5), body: [
            Conv(out: 20, kernel: 1, bias: true), GlobalAvgPool, Linear(out: 7)])"#;
        reloaded_weights_match_eval(text, 2);
    }

    /// Channel-blocked kernels (AVX-512) repack their weights by blocks of channels, and the
    /// blocked classifier transposes the linear weights: copies still, refreshed with the rest.
    #[test]
    fn reloaded_weights_reach_channel_blocked_kernels() {
        let text = r#"Network(name: "b", input: Image(channels: 16, height: 6, width: 7), body: [
            Conv(out: 32, kernel: 1, bias: true, act: Relu6), Conv(out: 32, kernel: 3, groups: 32, bias: true),
            Conv(out: 16, kernel: 1), Conv(out: 48, kernel: 1, bias: true), GlobalAvgPool, Linear(out: 5)])"#;
        reloaded_weights_match_eval(text, 2);
    }
}
