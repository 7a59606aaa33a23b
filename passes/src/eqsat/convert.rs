//! Graph -> e-graph, and the extracted e-graph -> Graph with its weights materialized.

use std::collections::{BTreeSet, HashMap};

use egg::{Extractor, Id};

use super::analysis::{Graph as EGraph, Shapes};
use super::cost::Cost;
use super::lang::{Attr, Tensor, graph_op};
use ir::{Graph, Op, Tensor as Array, Value, Weights};

/// An e-graph holding one graph, with the names of the original nodes by e-class.
pub struct Loaded {
    /// The e-graph.
    pub egraph: EGraph,
    /// The root class (`outputs`).
    pub root: Id,
    /// The class of each original node output, and its node's name.
    pub names: Vec<(Id, String)>,
    /// The graph inputs' classes, in order, with their names.
    pub inputs: Vec<(Id, String)>,
}

/// Adds every node of `graph` to a new e-graph.
pub fn load(graph: &Graph) -> Loaded {
    let mut shapes = Shapes::default();
    for (name, _, spec) in ir::weights::expected_params(graph) {
        shapes.params.insert(name, spec.shape);
    }
    for &id in graph.inputs() {
        let node = graph.node(id);
        shapes.inputs.insert(node.name.clone(), node.outputs[0].clone());
    }
    let mut egraph = EGraph::new(shapes);
    let mut classes: HashMap<Value, Id> = HashMap::new();
    let mut names = Vec::new();
    let mut inputs = Vec::new();
    for id in graph.topo_order().expect("eqsat runs on verified, acyclic graphs") {
        let node = graph.node(id);
        let operands: Vec<Id> = graph.operands(id).iter().map(|v| classes[v]).collect();
        let mut attr = |a: Attr| egraph.add(Tensor::Attr(a));
        let op = attr(Attr::Op(node.op.clone()));
        let mut param = |suffix: &str| {
            let name = egraph.add(Tensor::Attr(Attr::Name(format!("{}.{suffix}", node.name))));
            egraph.add(Tensor::Param(name))
        };
        let outputs: Vec<Id> = match &node.op {
            Op::Input => {
                let name = egraph.add(Tensor::Attr(Attr::Name(node.name.clone())));
                let class = egraph.add(Tensor::Input(name));
                inputs.push((class, node.name.clone()));
                vec![class]
            }
            Op::Conv(c) => {
                let w = param("weight");
                let b = if c.bias { param("bias") } else { zeros(&mut egraph, c.out_channels) };
                vec![egraph.add(Tensor::Conv([op, operands[0], w, b]))]
            }
            Op::Linear { out_features, bias } => {
                let w = param("weight");
                let b = if *bias { param("bias") } else { zeros(&mut egraph, *out_features) };
                vec![egraph.add(Tensor::Linear([op, operands[0], w, b]))]
            }
            Op::BatchNorm { .. } => {
                let p = ["weight", "bias", "running_mean", "running_var"].map(&mut param);
                vec![egraph.add(Tensor::BatchNorm([op, operands[0], p[0], p[1], p[2], p[3]]))]
            }
            Op::Split { sizes } => {
                let tuple = egraph.add(Tensor::Split([op, operands[0]]));
                (0..sizes.len())
                    .map(|k| {
                        let index = egraph.add(Tensor::Attr(Attr::Index(k)));
                        egraph.add(Tensor::Get([index, tuple]))
                    })
                    .collect()
            }
            Op::Concat => {
                // n-ary concats nest to the left: concat(concat(a, b), c).
                let mut acc = operands[0];
                for &next in &operands[1..] {
                    acc = egraph.add(Tensor::Concat([acc, next]));
                }
                vec![acc]
            }
            Op::Gather { channels } => {
                let c = egraph.add(Tensor::Attr(Attr::Channels(channels.clone())));
                vec![egraph.add(Tensor::Gather([c, operands[0]]))]
            }
            Op::Relu => vec![egraph.add(Tensor::Relu(operands[0]))],
            Op::Relu6 => vec![egraph.add(Tensor::Relu6(operands[0]))],
            Op::Hardswish => vec![egraph.add(Tensor::Hardswish(operands[0]))],
            Op::Sigmoid => vec![egraph.add(Tensor::Sigmoid(operands[0]))],
            Op::GlobalAvgPool => vec![egraph.add(Tensor::GlobalAvgPool(operands[0]))],
            Op::Flatten => vec![egraph.add(Tensor::Flatten(operands[0]))],
            Op::Softmax => vec![egraph.add(Tensor::Softmax(operands[0]))],
            Op::Add => vec![egraph.add(Tensor::Add([operands[0], operands[1]]))],
            Op::Mul => vec![egraph.add(Tensor::Mul([operands[0], operands[1]]))],
            Op::ChannelShuffle { .. } => vec![egraph.add(Tensor::ChannelShuffle([op, operands[0]]))],
            Op::MaxPool(_) => vec![egraph.add(Tensor::MaxPool([op, operands[0]]))],
            Op::AvgPool(_) => vec![egraph.add(Tensor::AvgPool([op, operands[0]]))],
            Op::Reshape { .. } => vec![egraph.add(Tensor::Reshape([op, operands[0]]))],
            Op::Transpose { .. } => vec![egraph.add(Tensor::Transpose([op, operands[0]]))],
            Op::Train(_) => unreachable!("training graphs skip equality saturation"),
        };
        for (port, class) in outputs.into_iter().enumerate() {
            classes.insert(Value { node: id, port }, class);
            names.push((class, node.name.clone()));
        }
    }
    let roots: Vec<Id> = graph.outputs().iter().map(|v| classes[v]).collect();
    let root = egraph.add(Tensor::Outputs(roots.into_boxed_slice()));
    egraph.rebuild();
    Loaded { egraph, root, names, inputs }
}

fn zeros(egraph: &mut EGraph, n: usize) -> Id {
    let len = egraph.add(Tensor::Attr(Attr::Index(n)));
    egraph.add(Tensor::Zeros(len))
}

/// Builds the cheapest graph of a saturated e-graph, with the weights its expressions define.
pub struct Rebuild<'a> {
    egraph: &'a EGraph,
    extractor: Extractor<'a, Cost<'a>, Tensor, Shapes>,
    weights: &'a Weights,
    names: HashMap<Id, String>,
    graph: Graph,
    out_weights: Weights,
    values: HashMap<Id, Vec<Value>>,
    arrays: HashMap<Id, Array>,
    used_names: BTreeSet<String>,
}

/// Extracts the cheapest program from `loaded` and rebuilds it as a graph named `name`.
pub fn extract(loaded: &Loaded, cost: Cost<'_>, weights: &Weights, name: &str) -> (Graph, Weights) {
    let egraph = &loaded.egraph;
    let mut names = HashMap::new();
    for (class, n) in &loaded.names {
        names.entry(egraph.find(*class)).or_insert_with(|| n.clone());
    }
    let mut r = Rebuild {
        egraph,
        extractor: Extractor::new(egraph, cost),
        weights,
        names,
        graph: Graph::new(name),
        out_weights: Weights::default(),
        values: HashMap::new(),
        arrays: HashMap::new(),
        used_names: BTreeSet::new(),
    };
    for (class, n) in &loaded.inputs {
        let shape = egraph[*class].data.shape().clone();
        let v = r.graph.add_input(n.clone(), shape, None);
        r.values.insert(egraph.find(*class), vec![v]);
    }
    let Tensor::Outputs(roots) = r.extractor.find_best_node(loaded.root).clone() else {
        unreachable!("the root class holds only `outputs`")
    };
    let outputs: Vec<Value> = roots.iter().map(|&c| r.value(c)).collect();
    r.graph.set_outputs(outputs);
    (r.graph, r.out_weights)
}

impl Rebuild<'_> {
    fn attr(&self, id: Id) -> &Attr {
        self.egraph[id].data.attr()
    }

    fn value(&mut self, class: Id) -> Value {
        self.values(class)[0]
    }

    /// The values of a class (a split's tuple has several), building its nodes on first use.
    fn values(&mut self, class: Id) -> Vec<Value> {
        let class = self.egraph.find(class);
        if let Some(v) = self.values.get(&class) {
            return v.clone();
        }
        let node = self.extractor.find_best_node(class).clone();
        let built = match &node {
            Tensor::Get([i, t]) => {
                let Attr::Index(i) = *self.attr(*i) else { unreachable!("get takes an index") };
                vec![self.values(*t)[i]]
            }
            Tensor::Concat(_) => {
                let mut parts = Vec::new();
                self.concat_operands(class, &mut parts);
                let operands: Vec<Value> = parts.into_iter().map(|c| self.value(c)).collect();
                let name = self.name(class, "concat", false);
                self.add(Op::Concat, &operands, name, &[])
            }
            _ => {
                let (mut op, operands) =
                    graph_op(&node, |id| self.egraph[id].data.attr()).expect("tensor classes hold graph ops");
                let operands: Vec<Value> = operands.iter().map(|&c| self.value(c)).collect();
                let (suffixes, params): (Vec<&str>, Vec<Id>) = match &node {
                    Tensor::Conv([_, _, w, b]) | Tensor::Linear([_, _, w, b]) => {
                        let has_bias = !matches!(self.extractor.find_best_node(*b), Tensor::Zeros(_));
                        match &mut op {
                            Op::Conv(c) => c.bias = has_bias,
                            Op::Linear { bias, .. } => *bias = has_bias,
                            _ => unreachable!("matched a conv or linear"),
                        }
                        if has_bias {
                            (vec!["weight", "bias"], vec![*w, *b])
                        } else {
                            (vec!["weight"], vec![*w])
                        }
                    }
                    Tensor::BatchNorm([_, _, g, b, m, v]) => {
                        (vec!["weight", "bias", "running_mean", "running_var"], vec![*g, *b, *m, *v])
                    }
                    _ => (Vec::new(), Vec::new()),
                };
                // A layer with weights is named after the tensor its weights came from, so
                // folded and permuted convs keep their PyTorch names.
                let name = match params.first() {
                    Some(&w) => {
                        let base = self.param_root(w).map(|p| p.trim_end_matches(".weight").to_string());
                        let n = base.unwrap_or_else(|| self.name(class, op.name(), false));
                        self.unique(n)
                    }
                    None => self.name(class, op.name(), false),
                };
                let arrays: Vec<(&str, Array)> =
                    suffixes.into_iter().zip(params).map(|(s, w)| (s, self.array(w))).collect();
                self.add(op, &operands, name, &arrays)
            }
        };
        self.values.insert(class, built.clone());
        built
    }

    fn add(&mut self, op: Op, operands: &[Value], name: String, params: &[(&str, Array)]) -> Vec<Value> {
        for (suffix, array) in params {
            self.out_weights.insert(format!("{name}.{suffix}"), array.clone());
        }
        self.graph.add(op, operands, name, None).expect("extracted programs are well-shaped")
    }

    /// The leaves of a chain of binary concats, left to right.
    fn concat_operands(&self, class: Id, out: &mut Vec<Id>) {
        match self.extractor.find_best_node(class) {
            Tensor::Concat([a, b]) => {
                self.concat_operands(*a, out);
                self.concat_operands(*b, out);
            }
            _ => out.push(class),
        }
    }

    /// The name of the original node in this class, or one made up from the op.
    fn name(&mut self, class: Id, op: &str, unique: bool) -> String {
        let base = self.names.get(&self.egraph.find(class)).cloned().unwrap_or_else(|| op.to_string());
        if unique { self.unique(base) } else { base }
    }

    /// `name`, or `name_1`, `name_2`, ... when taken by an earlier layer with weights.
    fn unique(&mut self, name: String) -> String {
        let taken = |n: &String| self.used_names.contains(n);
        let candidate = (0..)
            .map(|k| if k == 0 { name.clone() } else { format!("{name}_{k}") })
            .find(|c| !taken(c))
            .expect("some suffix is free");
        self.used_names.insert(candidate.clone());
        candidate
    }

    /// The parameter at the root of a weight expression, following the tensor being transformed.
    fn param_root(&self, class: Id) -> Option<String> {
        match self.extractor.find_best_node(class) {
            Tensor::Param(n) => match self.attr(*n) {
                Attr::Name(n) => Some(n.clone()),
                _ => None,
            },
            Tensor::Rows([_, w])
            | Tensor::Cols([_, w])
            | Tensor::FoldWeight([.., w])
            | Tensor::FoldBias([.., w]) => self.param_root(*w),
            _ => None,
        }
    }

    /// Evaluates a weight expression.
    fn array(&mut self, class: Id) -> Array {
        let class = self.egraph.find(class);
        if let Some(a) = self.arrays.get(&class) {
            return a.clone();
        }
        let node = self.extractor.find_best_node(class).clone();
        let channels = |r: &Self, id: Id| match r.attr(id) {
            Attr::Channels(c) => c.clone(),
            other => panic!("expected channels, found `{other}`"),
        };
        let eps = |r: &Self, id: Id| match r.attr(id) {
            Attr::Op(Op::BatchNorm { eps }) => f64::from(eps.0),
            other => panic!("expected batch norm attributes, found `{other}`"),
        };
        let a = match node {
            Tensor::Param(n) => match self.attr(n) {
                Attr::Name(n) => self.weights.get(n).unwrap_or_else(|| panic!("no weights `{n}`")).clone(),
                other => panic!("expected a name, found `{other}`"),
            },
            Tensor::Zeros(n) => match self.attr(n) {
                Attr::Index(n) => Array::zeros(&[*n]),
                other => panic!("expected a length, found `{other}`"),
            },
            Tensor::Rows([c, w]) => {
                let (c, w) = (channels(self, c), self.array(w));
                gather_axis(&w, &c, 0)
            }
            Tensor::Cols([c, w]) => {
                let (c, w) = (channels(self, c), self.array(w));
                gather_axis(&w, &c, 1)
            }
            Tensor::FoldWeight([o, g, v, w]) => {
                let (eps, g, v, mut w) = (eps(self, o), self.array(g), self.array(v), self.array(w));
                let per_row = w.numel() / w.shape[0];
                for (i, x) in w.data.iter_mut().enumerate() {
                    let r = i / per_row;
                    *x = (f64::from(*x) * f64::from(g.data[r]) / (f64::from(v.data[r]) + eps).sqrt()) as f32;
                }
                w
            }
            Tensor::FoldBias([o, g, be, m, v, b]) => {
                let eps = eps(self, o);
                let [g, be, m, v, mut b] = [g, be, m, v, b].map(|id| self.array(id));
                for (r, x) in b.data.iter_mut().enumerate() {
                    let scale = f64::from(g.data[r]) / (f64::from(v.data[r]) + eps).sqrt();
                    *x = ((f64::from(*x) - f64::from(m.data[r])) * scale + f64::from(be.data[r])) as f32;
                }
                b
            }
            other => panic!("`{other}` is not a weight expression"),
        };
        self.arrays.insert(class, a.clone());
        a
    }
}

/// Gathers slices of `w` along `axis` (0 or 1). Along axis 1, each selected channel may span a
/// block of columns (a linear layer reading `[c, h, w]` features has blocks of `h * w`).
fn gather_axis(w: &Array, channels: &[usize], axis: usize) -> Array {
    let outer: usize = w.shape[..axis].iter().product();
    let along = w.shape[axis];
    let inner = w.numel() / (outer * along);
    let block = along / channels.len();
    let mut shape = w.shape.clone();
    shape[axis] = channels.len() * block;
    let mut data = Vec::with_capacity(outer * shape[axis] * inner);
    for o in 0..outer {
        for &c in channels {
            let start = (o * along + c * block) * inner;
            data.extend_from_slice(&w.data[start..start + block * inner]);
        }
    }
    Array::new(&shape, data)
}
