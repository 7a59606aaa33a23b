//! Accuracy of a network's weights on a data set, measured by the compiled network (batch norm
//! with its running statistics, as deployed).

use ir::{Graph, Weights};
use passes::Level;

use crate::data::{Batches, Dataset};
use crate::{Error, Result};

/// How well a network classifies a data set.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Accuracy {
    /// Fraction of examples whose largest logit is their label's.
    pub top1: f64,
    /// Fraction whose label is among the five largest logits (data sets of more than 5 classes).
    pub top5: Option<f64>,
    /// Mean cross-entropy loss.
    pub loss: f64,
    /// Examples measured.
    pub samples: usize,
}

/// Builds a network for a batch size (the batch is fixed when a network is instantiated).
pub type Network<'a> = dyn Fn(usize) -> ir::Result<Graph> + 'a;

/// Evaluates `weights` on every example of `data`, `batch` at a time, on `threads` threads,
/// with the network optimized (`-O2`: batch norm folded) and compiled for them.
pub fn evaluate(
    network: &Network<'_>,
    weights: &Weights,
    data: &Dataset,
    batch: usize,
    threads: usize,
) -> Result<Accuracy> {
    let graph =
        network(batch).map_err(|e| Error::Network { network: "network".into(), message: e.to_string() })?;
    check_fits(&graph, data)?;
    let fail = |message: String| Error::Network { network: graph.name().to_string(), message };
    let optimized = passes::optimize(&graph, weights, Level::O2, None);
    let mut model = codegen::CompiledModel::compile(&optimized.graph, &optimized.weights, &optimized.plan, 2)
        .map_err(|e| fail(e.to_string()))?;
    model.set_threads(threads);
    Ok(measure(data, batch, &mut |input| model.run(input)))
}

/// A network compiled once to evaluate many sets of weights (after every epoch of training):
/// not optimized, so that its kernels read the weights as they are.
pub struct Evaluator {
    model: codegen::Reloadable,
    batch: usize,
}

impl Evaluator {
    /// Compiles `graph` (its batch is the evaluation batch) with `weights` as a start.
    pub fn new(graph: &Graph, weights: &Weights, threads: usize) -> Result<Evaluator> {
        let fail = |message: String| Error::Network { network: graph.name().to_string(), message };
        let plan = passes::plan::plan(graph, false);
        let mut model =
            codegen::Reloadable::compile(graph, weights, &plan, 1).map_err(|e| fail(e.to_string()))?;
        model.model().set_threads(threads);
        let batch = model.inputs()[0][0];
        Ok(Evaluator { model, batch })
    }

    /// The accuracy of `weights` on `data`.
    pub fn accuracy(&mut self, weights: &Weights, data: &Dataset) -> Accuracy {
        self.model.set_weights(weights);
        let model = self.model.model();
        measure(data, self.batch, &mut |input| model.run(input))
    }
}

/// Runs `data` through `run` (a compiled network for `batch` images) and scores its logits.
fn measure(data: &Dataset, batch: usize, run: &mut dyn FnMut(&[f32]) -> Vec<f32>) -> Accuracy {
    let mut input = vec![0.0; batch * data.image_len()];
    let (mut top1, mut top5, mut loss, mut classes) = (0usize, 0usize, 0.0f64, 0);
    for b in Batches::sequential(data, batch) {
        // The last batch may be short: the rest of the input keeps stale images, ignored.
        input[..b.images.len()].copy_from_slice(&b.images);
        let logits = run(&input);
        classes = logits.len() / batch;
        for (row, &label) in logits.chunks(classes).zip(&b.labels) {
            let mine = row[label as usize];
            let above = row.iter().filter(|&&v| v > mine).count();
            top1 += usize::from(above == 0);
            top5 += usize::from(above < 5);
            loss += cross_entropy(row, label as usize);
        }
    }
    let n = data.len() as f64;
    Accuracy {
        top1: top1 as f64 / n,
        top5: (classes > 5).then(|| top5 as f64 / n),
        loss: loss / n,
        samples: data.len(),
    }
}

/// Checks that `graph` takes the data set's images and has a logit for each of its classes.
pub fn check_fits(graph: &Graph, data: &Dataset) -> Result<()> {
    let fail = |message: String| Err(Error::Network { network: graph.name().to_string(), message });
    let input = graph.node(graph.inputs()[0]).outputs[0].item_dims().to_vec();
    if input != data.shape() {
        return fail(format!("the network takes {input:?} images, the data set has {:?}", data.shape()));
    }
    let logits = graph.shape(graph.outputs()[0]);
    if logits.rank() != 2 || logits.channels() < data.num_classes() {
        return fail(format!(
            "its output {logits} is not logits for the data set's {} classes",
            data.num_classes()
        ));
    }
    Ok(())
}

/// `-log softmax(row)[label]`.
pub(crate) fn cross_entropy(row: &[f32], label: usize) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = row.iter().map(|&v| f64::from(v - max).exp()).sum();
    f64::from(max) + sum.ln() - f64::from(row[label])
}
