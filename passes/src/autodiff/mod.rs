//! Reverse-mode differentiation: a forward network becomes a training graph.
//!
//! ```text
//! forward:  input ─► conv ─► batch_norm ─► relu ─► … ─► linear ─► logits
//! training: input ─► conv ─► batch_norm_train ─► relu ─► … ─► linear ─► logits ─► softmax_cross_entropy ─► loss
//!           labels ─────────────────────────────────────────────────────────┘
//!           … ◄─ conv_grad_input ◄─ batch_norm_grad ◄─ activation_grad ◄─ … ◄─ softmax_cross_entropy_grad
//!           conv_grad_weight ─► sgd_update(lr) ─► new weight, new momentum buffer
//! ```
//!
//! Phases: (1) copy the forward graph with batch norms in training mode; (2) add the loss and
//! its gradient; (3) walk the forward nodes in reverse topological order, each adding the
//! gradient ops of its operands and parameters ([`rules`]), summing gradients of values read
//! more than once; (4) with an optimizer, one SGD step per trainable parameter.
//!
//! The training graph is an ordinary verified graph that `ir::eval` runs; [`Training`] says
//! which of its outputs are the loss, the logits and the new state. Backward ops that read a
//! forward node's weights carry its name and borrow them, so a training graph's weights are
//! the network's plus one momentum buffer per trainable parameter.

mod rules;

use std::collections::BTreeMap;

use ir::{Float, Graph, Op, ParamKind, Sgd, TrainOp, Value};

/// Why a network cannot be differentiated.
#[derive(Debug, thiserror::Error)]
#[error("cannot train `{node}`: {message}")]
pub struct Error {
    /// The node at fault (or the network's name).
    pub node: String,
    /// What is wrong.
    pub message: String,
}

/// SGD hyper-parameters fixed at compile time (the learning rate is an input of each step).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdOptions {
    /// Momentum factor.
    pub momentum: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// L2 penalty on convolution and linear weights (never on batch norm or biases).
    pub weight_decay: f32,
}

/// What the training graph computes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainOptions {
    /// Label smoothing of the cross-entropy loss.
    pub label_smoothing: f32,
    /// Momentum of the batch norms' running statistics (PyTorch's default is 0.1).
    pub bn_momentum: f32,
    /// The optimizer step; without it the graph outputs the gradients instead of new weights.
    pub optimizer: Option<SgdOptions>,
    /// Whether to output the gradient with respect to the network's input too (for tests).
    pub input_gradient: bool,
}

impl Default for TrainOptions {
    fn default() -> TrainOptions {
        TrainOptions {
            label_smoothing: 0.0,
            bn_momentum: 0.1,
            optimizer: Some(SgdOptions { momentum: 0.9, nesterov: true, weight_decay: 5e-5 }),
            input_gradient: false,
        }
    }
}

/// A training graph and the meaning of its outputs. Its inputs are the network's input, the
/// labels `[n, 1]` (class indices as f32) and, with an optimizer, the learning rate `[1, 1]`.
#[derive(Clone, Debug)]
pub struct Training {
    /// The graph.
    pub graph: Graph,
    /// Output index of the per-item loss `[n, 1]`.
    pub loss: usize,
    /// Output index of the logits `[n, classes]`.
    pub logits: usize,
    /// Tensors a step replaces in the weights: `(name, output index)`. The new parameters and
    /// momentum buffers (with an optimizer) and the batch norms' running statistics.
    pub state: Vec<(String, usize)>,
    /// Gradients of the trainable parameters: `(name, output index)`. With an optimizer too: a
    /// step at learning rate 0 then measures them without changing the weights (the search's
    /// zero-cost proxies).
    pub gradients: Vec<(String, usize)>,
    /// Output index of the gradient with respect to the input, when asked for.
    pub input_gradient: Option<usize>,
}

impl Training {
    /// The weights a first step starts from: the network's `weights` and a zero momentum
    /// buffer for every trainable parameter.
    pub fn initial_state(&self, weights: &ir::Weights) -> ir::Weights {
        let mut state = weights.clone();
        for (name, _, spec) in ir::weights::expected_params(&self.graph) {
            if state.get(&name).is_none() {
                state.insert(name, ir::Tensor::zeros(&spec.shape));
            }
        }
        state
    }

    /// Writes a step's new state (taken from its `outputs`) into `weights`.
    pub fn apply_state(&self, outputs: &[ir::Tensor], weights: &mut ir::Weights) {
        for (name, index) in &self.state {
            weights.insert(name.clone(), outputs[*index].clone());
        }
    }
}

/// Builds the training graph of `forward`, a verified network with one input and one output,
/// the logits `[n, classes]`.
pub fn training_graph(forward: &Graph, options: &TrainOptions) -> Result<Training, Error> {
    let fail = |node: &str, message: String| Error { node: node.to_string(), message };
    let ([input], [logits]) = (forward.inputs(), forward.outputs()) else {
        return Err(fail(forward.name(), "training needs a network with one input and one output".into()));
    };
    let logits_shape = forward.shape(*logits);
    if logits_shape.rank() != 2 {
        return Err(fail(
            &forward.node(logits.node).name,
            format!("the output must be logits [n, classes], got {logits_shape}"),
        ));
    }
    let mut b = Backward::new(forward, options);
    let logits = b.copy_forward()?;
    let n = logits_shape.batch();
    let labels = b.input("labels", vec![n, 1]);
    let smoothing = Float(options.label_smoothing);
    let loss =
        b.op(TrainOp::SoftmaxCrossEntropy { label_smoothing: smoothing }, &[logits, labels], "loss")?[0];
    let d_logits = b.op(
        TrainOp::SoftmaxCrossEntropyGrad { label_smoothing: smoothing },
        &[logits, labels],
        "loss/grad",
    )?[0];
    b.accumulate(logits, d_logits)?;
    b.differentiate(*input)?;

    let mut outputs = vec![loss, logits];
    let mut output = |v: Value| {
        outputs.push(v);
        outputs.len() - 1
    };
    let mut state: Vec<(String, usize)> =
        b.running_stats.iter().map(|(name, &v)| (name.clone(), output(v))).collect();
    let gradients: Vec<(String, usize)> = b
        .param_grads
        .iter()
        .map(|(node, kind, _, grad)| (format!("{node}.{}", kind.suffix()), output(*grad)))
        .collect();
    if let Some(sgd) = options.optimizer {
        let lr = b.input("lr", vec![1, 1]);
        for (node, kind, decays, grad) in std::mem::take(&mut b.param_grads) {
            let op = TrainOp::SgdUpdate(Sgd {
                param: kind,
                momentum: Float(sgd.momentum),
                nesterov: sgd.nesterov,
                weight_decay: Float(if decays { sgd.weight_decay } else { 0.0 }),
            });
            let new = b.op(op, &[grad, lr], &node)?;
            state.push((format!("{node}.{}", kind.suffix()), output(new[0])));
            state.push((format!("{node}.{}", kind.momentum_suffix()), output(new[1])));
        }
    }
    let input_gradient = b.input_grad.map(&mut output);
    let mut graph = b.graph;
    graph.set_outputs(outputs);
    // Gradients flowing towards the input stop at its first reader; what only fed them goes.
    crate::eliminate_dead_nodes(&mut graph, &mut ir::Weights::default());
    debug_assert!(ir::verify(&graph).is_ok(), "autodiff made an invalid graph: {:?}", ir::verify(&graph));
    Ok(Training { graph, loss: 0, logits: 1, state, gradients, input_gradient })
}

/// The graph under construction and what the reverse walk has found so far.
struct Backward<'a> {
    forward: &'a Graph,
    bn_momentum: f32,
    graph: Graph,
    /// Each forward value's copy in the training graph.
    copies: BTreeMap<Value, Value>,
    /// The gradient of each training-graph value found so far (summed over its readers).
    grads: BTreeMap<Value, Value>,
    /// `(node, parameter, decays, gradient)` in the order the walk finds them.
    param_grads: Vec<(String, ParamKind, bool, Value)>,
    /// Updated running statistics by tensor name.
    running_stats: BTreeMap<String, Value>,
    /// Whether the input's gradient is wanted, and its value once found.
    input_gradient: bool,
    input_grad: Option<Value>,
    /// Counter for the names of the gradient-summing adds.
    sums: usize,
}

impl<'a> Backward<'a> {
    fn new(forward: &'a Graph, options: &TrainOptions) -> Backward<'a> {
        Backward {
            forward,
            bn_momentum: options.bn_momentum,
            graph: Graph::new(format!("{}_train", forward.name())),
            copies: BTreeMap::new(),
            grads: BTreeMap::new(),
            param_grads: Vec::new(),
            running_stats: BTreeMap::new(),
            input_gradient: options.input_gradient,
            input_grad: None,
            sums: 0,
        }
    }

    fn input(&mut self, name: &str, dims: Vec<usize>) -> Value {
        let shape = ir::Shape::new(dims).expect("small shapes fit");
        self.graph.add_input(name, shape, None)
    }

    /// Adds `op` named `name` (a forward node's name, when it borrows that node's weights).
    fn op(&mut self, op: impl Into<Op>, operands: &[Value], name: &str) -> Result<Vec<Value>, Error> {
        self.graph
            .add(op.into(), operands, name, None)
            .map_err(|message| Error { node: name.to_string(), message })
    }

    /// Copies the forward graph, batch norms in training mode; returns the logits' copy.
    fn copy_forward(&mut self) -> Result<Value, Error> {
        let forward = self.forward;
        for id in forward.topo_order().expect("training graphs come from verified graphs") {
            let node = forward.node(id);
            let new: Vec<Value> = if node.op == Op::Input {
                vec![self.graph.add_input(node.name.clone(), node.outputs[0].clone(), node.location.clone())]
            } else {
                let operands: Vec<Value> = forward.operands(id).iter().map(|v| self.copies[v]).collect();
                let op = match &node.op {
                    Op::BatchNorm { eps } => {
                        Op::Train(TrainOp::BatchNormTrain { eps: *eps, momentum: Float(self.bn_momentum) })
                    }
                    // A shuffle is a permutation of channels: as a gather, the memory plan makes
                    // it (and its gradient, the inverse gather) a view instead of a copy.
                    Op::ChannelShuffle { groups } => {
                        let c = node.outputs[0].channels();
                        Op::Gather {
                            channels: (0..c).map(|o| (o % groups) * (c / groups) + o / groups).collect(),
                        }
                    }
                    Op::Train(_) => {
                        return Err(Error {
                            node: node.name.clone(),
                            message: "it is a training graph already".into(),
                        });
                    }
                    op => op.clone(),
                };
                let values = self
                    .graph
                    .add(op, &operands, node.name.clone(), node.location.clone())
                    .expect("the forward graph was verified");
                if let Op::BatchNorm { .. } = node.op {
                    for (port, suffix) in [(3, "running_mean"), (4, "running_var")] {
                        self.running_stats.insert(format!("{}.{suffix}", node.name), values[port]);
                    }
                }
                values
            };
            for (port, v) in new.into_iter().enumerate() {
                self.copies.insert(Value { node: id, port }, v);
            }
        }
        Ok(self.copies[&self.forward.outputs()[0]])
    }

    /// Adds `grad` to the gradient of `value` (a training-graph value).
    fn accumulate(&mut self, value: Value, grad: Value) -> Result<(), Error> {
        let sum = match self.grads.get(&value) {
            None => grad,
            Some(&earlier) => {
                self.sums += 1;
                let name = format!("grad_sum_{}", self.sums);
                self.op(Op::Add, &[earlier, grad], &name)?[0]
            }
        };
        self.grads.insert(value, sum);
        Ok(())
    }

    /// Walks the forward nodes in reverse, adding each one's gradient ops.
    fn differentiate(&mut self, input: ir::NodeId) -> Result<(), Error> {
        let forward = self.forward;
        let order = forward.topo_order().expect("training graphs come from verified graphs");
        for &id in order.iter().rev() {
            let node = forward.node(id);
            let outputs: Vec<Value> =
                (0..node.outputs.len()).map(|port| self.copies[&Value { node: id, port }]).collect();
            let dys: Vec<Option<Value>> = outputs.iter().map(|v| self.grads.get(v).copied()).collect();
            if dys.iter().all(Option::is_none) {
                continue;
            }
            if id == input {
                self.input_grad = if self.input_gradient { dys[0] } else { None };
                continue;
            }
            rules::backward(self, id, &outputs, &dys)?;
        }
        Ok(())
    }

    /// Whether the gradient of forward value `v` is worth computing: everything but the
    /// network's input, unless its gradient was asked for.
    fn needs_grad(&self, v: Value) -> bool {
        self.forward.node(v.node).op != Op::Input || self.input_gradient
    }
}
