//! Expands a parsed network file into a graph: evaluates parameters and expressions,
//! instantiates blocks, names every node after PyTorch's module paths, and checks shapes as
//! it goes, so each error points at the statement that caused it.
//!
//! Naming follows `torch.nn`: a `Sequence` (like `nn.Sequential`) numbers its unnamed
//! children 0, 1, 2, ...; a block instance and the network body name their children by
//! `name:`, or by op (`relu`, `relu_1`, ...) when they have none. A `Conv` with `bn: true`
//! and a name is a sub-module `name.0` (conv), `name.1` (bn), `name.2` (activation), like
//! torchvision's `Conv2dNormActivation`; without a name its parts take consecutive numbers.

use std::collections::BTreeMap;

use super::BuildOptions;
use super::ast::{Act, Block, Bn, Expression, Network, Statement};
use super::expr::{self, Env, Value};
use super::locate::{Seg, SourceMap};
use crate::{Conv, Error, Float, Graph, Location, Op, Pool, Result, Shape};

type Tensor = crate::Value;

/// How unnamed children of a scope are named.
enum Naming {
    /// By position: `prefix.0`, `prefix.1`, ...
    Indexed(usize),
    /// By op: `prefix.relu`, `prefix.relu_1`, ...
    ByOp(BTreeMap<String, usize>),
}

struct Scope {
    prefix: String,
    naming: Naming,
}

/// A block instantiation in progress, for recursion checks and error context.
struct Instance {
    block: String,
    module: String,
    used_at: Location,
}

/// The most statements (and repeat iterations) a network may expand to. Real networks expand
/// to hundreds, very deep ones to a few thousand; beyond this, a repeat count is a typo that
/// would otherwise build for minutes or exhaust memory.
const MAX_STEPS: usize = 20_000;

struct Expander<'a> {
    graph: Graph,
    source: SourceMap,
    blocks: &'a BTreeMap<String, Block>,
    globals: Vec<(String, Value)>,
    env: Env,
    scopes: Vec<Scope>,
    /// Named tensors, one map per block instance (the network body is the first).
    frames: Vec<BTreeMap<String, Tensor>>,
    current: Tensor,
    stack: Vec<Instance>,
    /// Statements and repeat iterations expanded so far, against `MAX_STEPS`.
    steps: usize,
    /// Where each node with parameters was made: their names key the parameters, so they
    /// must be unique (as `verify` checks).
    param_owners: BTreeMap<String, Location>,
}

/// A path into the document, built up as statements nest.
type Path = Vec<Seg>;

fn key(k: &str) -> Seg {
    Seg::Key(k.to_string())
}

fn child(path: &[Seg], seg: Seg) -> Path {
    let mut p = path.to_vec();
    p.push(seg);
    p
}

pub fn expand(network: &Network, source: SourceMap, options: &BuildOptions) -> Result<Graph> {
    let globals = eval_params(network, &source, options)?;
    let mut env = Env::new();
    for (name, value) in &globals {
        env.bind(name, value.clone());
    }
    let input_path = vec![key("input")];
    let dim = |field: &str, e: &Expression| -> Result<usize> {
        let path = child(&input_path, key(field));
        let v = e
            .expr
            .eval(&env)
            .map_err(|m| source_error(&source, &path, &[], format!("in `{}`: {m}", e.text)))?;
        to_size(&v, &e.text, 1).map_err(|m| source_error(&source, &path, &[], format!("input {field}: {m}")))
    };
    let (c, h, w) = (
        dim("channels", &network.input.channels)?,
        dim("height", &network.input.height)?,
        dim("width", &network.input.width)?,
    );
    let input_location = source.locate(&input_path);
    let shape = Shape::nchw(options.batch, c, h, w).ok_or_else(|| Error::Source {
        location: input_location.clone(),
        message: format!("input [{}, {c}, {h}, {w}] has more than 2^31 - 1 elements", options.batch),
    })?;
    let mut graph = Graph::new(network.name.clone());
    let input = graph.add_input("input", shape, Some(input_location));
    let mut ex = Expander {
        graph,
        source,
        blocks: &network.blocks,
        globals,
        env,
        scopes: vec![Scope { prefix: String::new(), naming: Naming::ByOp(BTreeMap::new()) }],
        frames: vec![BTreeMap::from([("input".to_string(), input)])],
        current: input,
        stack: Vec::new(),
        steps: 0,
        param_owners: BTreeMap::new(),
    };
    ex.body(&network.body, &[key("body")])?;
    let out = ex.current;
    ex.graph.set_outputs(vec![out]);
    Ok(ex.graph)
}

/// Evaluates the network's parameters (with `--set` overrides) in dependency order.
pub fn eval_params(
    network: &Network,
    source: &SourceMap,
    options: &BuildOptions,
) -> Result<Vec<(String, Value)>> {
    let mut pending: BTreeMap<String, (expr::Expr, String)> =
        network.params.iter().map(|(k, e)| (k.clone(), (e.expr.clone(), e.text.clone()))).collect();
    for (name, text) in &options.overrides {
        if !pending.contains_key(name) {
            let known: Vec<&str> = network.params.keys().map(String::as_str).collect();
            return Err(Error::Override {
                key: name.clone(),
                message: format!(
                    "the network has no parameter `{name}`; its parameters are: {}",
                    known.join(", ")
                ),
            });
        }
        let parsed = expr::parse(text).map_err(|message| Error::Override { key: name.clone(), message })?;
        pending.insert(name.clone(), (parsed, text.clone()));
    }
    let mut env = Env::new();
    let mut done = Vec::new();
    // Parameters may refer to each other in any order; each round settles at least one, or
    // none can be settled and the first failure is the error.
    while !pending.is_empty() {
        let mut errors = BTreeMap::new();
        let mut settled = Vec::new();
        for (name, (e, _)) in &pending {
            match e.eval(&env) {
                Ok(v) => settled.push((name.clone(), v)),
                Err(m) => {
                    errors.insert(name.as_str(), m);
                }
            }
        }
        if settled.is_empty() {
            let (name, m) = stuck_parameter(&pending, errors);
            let text = &pending[&name].1;
            if options.overrides.iter().any(|(k, _)| *k == name) {
                return Err(Error::Override { key: name, message: format!("in `{text}`: {m}") });
            }
            let path = [key("params"), Seg::Key(name.clone())];
            return Err(source_error(source, &path, &[], format!("parameter `{name}` = `{text}`: {m}")));
        }
        for (name, v) in settled {
            pending.remove(&name);
            env.bind(&name, v.clone());
            done.push((name, v));
        }
    }
    Ok(done)
}

/// Which parameter to blame when none of `pending` evaluates, and why: the first that fails
/// by itself; when each waits for another, they wait in a cycle, named from its first member.
fn stuck_parameter(
    pending: &BTreeMap<String, (expr::Expr, String)>,
    mut errors: BTreeMap<&str, String>,
) -> (String, String) {
    let waits_for = |name: &str| pending[name].0.names().into_iter().find(|n| pending.contains_key(*n));
    if let Some(name) = pending.keys().find(|n| waits_for(n).is_none()) {
        let message = errors.remove(name.as_str()).expect("every pending parameter failed");
        return (name.clone(), message);
    }
    let mut chain: Vec<&str> = vec![pending.keys().next().expect("pending is not empty")];
    loop {
        let next = waits_for(chain[chain.len() - 1]).expect("every pending parameter waits for another");
        if let Some(start) = chain.iter().position(|n| *n == next) {
            chain.drain(..start);
            chain.push(next);
            let message = format!("it depends on itself ({})", chain.join(" -> "));
            return (chain[0].to_string(), message);
        }
        chain.push(next);
    }
}

fn source_error(source: &SourceMap, path: &[Seg], stack: &[Instance], message: String) -> Error {
    let mut message = message;
    for inst in stack.iter().rev() {
        message.push_str(&format!(
            "\n  in block `{}` instantiated as `{}` at {}",
            inst.block, inst.module, inst.used_at
        ));
    }
    Error::Source { location: source.locate(path), message }
}

/// A value as a size: a whole number of at least `min`.
fn to_size(v: &Value, text: &str, min: usize) -> std::result::Result<usize, String> {
    let n = match v {
        Value::Int(i) => *i,
        Value::Float(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => *x as i64,
        Value::Float(x) if x.fract() == 0.0 => return Err(format!("`{text}` is {x}, far too large")),
        Value::Float(x) => {
            return Err(format!(
                "`{text}` is {x}, not a whole number (round it with round(), floor() or make_divisible())"
            ));
        }
        other => return Err(format!("`{text}` is {}, expected a whole number", expr::kind(other))),
    };
    match usize::try_from(n) {
        Ok(n) if n >= min => Ok(n),
        _ => Err(format!("`{text}` is {n}, expected at least {min}")),
    }
}

impl Expander<'_> {
    fn error(&self, path: &[Seg], message: String) -> Error {
        source_error(&self.source, path, &self.stack, message)
    }

    fn location(&self, path: &[Seg]) -> Location {
        self.source.locate(path)
    }

    fn eval(&self, e: &Expression, path: &[Seg]) -> Result<Value> {
        e.expr.eval(&self.env).map_err(|m| self.error(path, format!("in `{}`: {m}", e.text)))
    }

    /// Evaluates `field` of the statement at `path` as a size of at least `min`.
    fn size(&self, e: &Expression, path: &[Seg], field: &str, min: usize) -> Result<usize> {
        let path = child(path, key(field));
        let v = self.eval(e, &path)?;
        to_size(&v, &e.text, min).map_err(|m| self.error(&path, format!("{field}: {m}")))
    }

    fn size_or(
        &self,
        e: &Option<Expression>,
        path: &[Seg],
        field: &str,
        min: usize,
        default: usize,
    ) -> Result<usize> {
        e.as_ref().map_or(Ok(default), |e| self.size(e, path, field, min))
    }

    fn flag(&self, e: &Option<Expression>, path: &[Seg], field: &str, default: bool) -> Result<bool> {
        let Some(e) = e else { return Ok(default) };
        let path = child(path, key(field));
        match self.eval(e, &path)? {
            Value::Bool(b) => Ok(b),
            v => Err(self.error(
                &path,
                format!("{field}: `{}` is {}, expected true or false", e.text, expr::kind(&v)),
            )),
        }
    }

    fn sizes(&self, e: &Expression, path: &[Seg], field: &str, min: usize) -> Result<Vec<usize>> {
        let path = child(path, key(field));
        match self.eval(e, &path)? {
            Value::List(items) => items
                .iter()
                .map(|v| {
                    to_size(v, &v.to_string(), min).map_err(|m| self.error(&path, format!("{field}: {m}")))
                })
                .collect(),
            v => {
                Err(self
                    .error(&path, format!("{field}: `{}` is {}, expected a list", e.text, expr::kind(&v))))
            }
        }
    }

    /// Looks up a named tensor of the current block instance.
    fn tensor(&self, name: &str, path: &[Seg]) -> Result<Tensor> {
        let frame = self.frames.last().expect("a frame is always open");
        frame.get(name).copied().ok_or_else(|| {
            let known: Vec<&str> = frame.keys().map(String::as_str).collect();
            self.error(
                path,
                format!("unknown tensor `{name}`; the tensors named so far are: {}", known.join(", ")),
            )
        })
    }

    fn bind_tensor(&mut self, name: &str, t: Tensor) {
        self.frames.last_mut().expect("a frame is always open").insert(name.to_string(), t);
    }

    /// The module-path name of the next child of the innermost scope.
    fn next_name(&mut self, explicit: Option<&str>, op: &str) -> String {
        let scope = self.scopes.last_mut().expect("a scope is always open");
        let local = match (explicit, &mut scope.naming) {
            (Some(n), _) => n.to_string(),
            (None, Naming::Indexed(next)) => {
                *next += 1;
                (*next - 1).to_string()
            }
            (None, Naming::ByOp(used)) => {
                let count = used.entry(op.to_string()).or_insert(0);
                *count += 1;
                if *count == 1 { op.to_string() } else { format!("{op}_{}", *count - 1) }
            }
        };
        if scope.prefix.is_empty() { local } else { format!("{}.{local}", scope.prefix) }
    }

    /// Adds a node reading `operands`, names it, and makes its first output current.
    fn apply(&mut self, op: Op, operands: &[Tensor], name: String, path: &[Seg]) -> Result<Vec<Tensor>> {
        let op_name = op.name();
        let location = self.location(path);
        let has_params = operands.first().is_some_and(|&x| !op.params(self.graph.shape(x)).is_empty());
        if has_params && let Some(first) = self.param_owners.get(&name) {
            let taken = if *first == location {
                "this statement makes a second layer of that name (in a repeat?)".to_string()
            } else {
                format!("the name is already taken by the layer at {first}")
            };
            return Err(self.error(
                path,
                format!("{op_name} `{name}`: {taken}; layers with parameters need unique names"),
            ));
        }
        let outs = self
            .graph
            .add(op, operands, name.clone(), Some(location.clone()))
            .map_err(|m| self.error(path, format!("{op_name} `{name}`: {m}")))?;
        if has_params {
            self.param_owners.insert(name, location);
        }
        self.current = outs[0];
        Ok(outs)
    }

    /// Binds `in_channels`, `in_height` and `in_width` of the tensor a statement reads.
    fn bind_input_dims(&mut self, t: Tensor) {
        let dims = self.graph.shape(t).dims().to_vec();
        if let Some(&c) = dims.get(1) {
            self.env.bind("in_channels", Value::Int(c as i64));
        }
        if dims.len() == 4 {
            self.env.bind("in_height", Value::Int(dims[2] as i64));
            self.env.bind("in_width", Value::Int(dims[3] as i64));
        }
    }

    fn body(&mut self, statements: &[Statement], path: &[Seg]) -> Result<()> {
        for (i, s) in statements.iter().enumerate() {
            let path = child(path, Seg::Index(i));
            self.step(&path)?;
            let input = self.current;
            self.env.push();
            self.bind_input_dims(input);
            let res = self.statement(s, &path);
            self.env.pop();
            res?;
        }
        Ok(())
    }

    fn statement(&mut self, s: &Statement, path: &[Seg]) -> Result<()> {
        let x = self.current;
        match s {
            Statement::Conv { out, kernel, stride, padding, dilation, groups, bias, bn, act, name, from } => {
                let x = match from {
                    Some(f) => self.tensor(f, &child(path, key("from")))?,
                    None => x,
                };
                self.bind_input_dims(x);
                let k = self.size(kernel, path, "kernel", 1)?;
                let dilation = self.size_or(dilation, path, "dilation", 1, 1)?;
                // Saturating: shape inference reports an absurd kernel and dilation.
                let same = dilation.saturating_mul(k - 1) / 2;
                let conv = Conv {
                    out_channels: self.size(out, path, "out", 1)?,
                    kernel: [k, k],
                    stride: [self.size_or(stride, path, "stride", 1, 1)?; 2],
                    padding: [self.size_or(padding, path, "padding", 0, same)?; 2],
                    dilation: [dilation; 2],
                    groups: self.size_or(groups, path, "groups", 1, 1)?,
                    bias: self.flag(bias, path, "bias", false)?,
                };
                self.conv(conv, x, bn, *act, name.as_deref(), path)
            }
            Statement::BatchNorm { eps, name } => {
                let eps = match eps {
                    Some(e) => {
                        let p = child(path, key("eps"));
                        match self.eval(e, &p)? {
                            Value::Float(v) => v as f32,
                            Value::Int(v) => v as f32,
                            v => {
                                return Err(
                                    self.error(&p, format!("eps: `{}` is {}", e.text, expr::kind(&v)))
                                );
                            }
                        }
                    }
                    None => 1e-5,
                };
                let n = self.next_name(name.as_deref(), "batch_norm");
                self.apply(Op::BatchNorm { eps: Float(eps) }, &[x], n, path)?;
                Ok(())
            }
            Statement::Relu => self.unary(Op::Relu, x, path),
            Statement::Relu6 => self.unary(Op::Relu6, x, path),
            Statement::Hardswish => self.unary(Op::Hardswish, x, path),
            Statement::Sigmoid => self.unary(Op::Sigmoid, x, path),
            Statement::GlobalAvgPool => self.unary(Op::GlobalAvgPool, x, path),
            Statement::Flatten => self.unary(Op::Flatten, x, path),
            Statement::Softmax => self.unary(Op::Softmax, x, path),
            Statement::MaxPool { kernel, stride, padding }
            | Statement::AvgPool { kernel, stride, padding } => {
                let k = self.size(kernel, path, "kernel", 1)?;
                let pool = Pool {
                    kernel: [k, k],
                    stride: [self.size_or(stride, path, "stride", 1, k)?; 2],
                    padding: [self.size_or(padding, path, "padding", 0, 0)?; 2],
                };
                let op = if matches!(s, Statement::MaxPool { .. }) {
                    Op::MaxPool(pool)
                } else {
                    Op::AvgPool(pool)
                };
                self.unary(op, x, path)
            }
            Statement::Linear { out, bias, name } => {
                let op = Op::Linear {
                    out_features: self.size(out, path, "out", 1)?,
                    bias: self.flag(bias, path, "bias", true)?,
                };
                let n = self.next_name(name.as_deref(), "linear");
                self.apply(op, &[x], n, path)?;
                Ok(())
            }
            Statement::Dropout { p } => {
                // Dropout is the identity at inference; it only takes its place in the
                // module numbering, so that the following layers keep PyTorch's names.
                let ppath = child(path, key("p"));
                let v = self.eval(p, &ppath)?;
                let ok = matches!(v, Value::Float(f) if (0.0..1.0).contains(&f)) || v == Value::Int(0);
                if !ok {
                    return Err(
                        self.error(&ppath, format!("p: `{}` must be a probability in [0, 1)", p.text))
                    );
                }
                self.next_name(None, "dropout");
                Ok(())
            }
            Statement::Add(names) | Statement::Mul(names) | Statement::Concat(names) => {
                let (op, arity) = match s {
                    Statement::Add(_) => (Op::Add, Some(2)),
                    Statement::Mul(_) => (Op::Mul, Some(2)),
                    _ => (Op::Concat, None),
                };
                if let Some(a) = arity
                    && names.len() != a
                {
                    return Err(self
                        .error(path, format!("{} takes {a} tensor names, got {}", op.name(), names.len())));
                }
                let operands = names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| self.tensor(n, &child(&child(path, Seg::Index(0)), Seg::Index(i))))
                    .collect::<Result<Vec<_>>>()?;
                let n = self.next_name(None, op.name());
                self.apply(op, &operands, n, path)?;
                Ok(())
            }
            Statement::Split { parts, sizes, names, from } => self.split(parts, sizes, names, from, path),
            Statement::ChannelShuffle { groups } => {
                let groups = self.size(groups, path, "groups", 1)?;
                self.unary(Op::ChannelShuffle { groups }, x, path)
            }
            Statement::Reshape { shape } => {
                let shape = self.sizes(shape, path, "shape", 1)?;
                self.unary(Op::Reshape { shape }, x, path)
            }
            Statement::Transpose { perm } => {
                let perm = self.sizes(perm, path, "perm", 0)?;
                self.unary(Op::Transpose { perm }, x, path)
            }
            Statement::Sequence { name, from, body } => {
                let x = match from {
                    Some(f) => self.tensor(f, &child(path, key("from")))?,
                    None => x,
                };
                let prefix = self.next_name(name.as_deref(), "sequence");
                self.current = x;
                self.scopes.push(Scope { prefix, naming: Naming::Indexed(0) });
                let res = self.body(body, &child(path, key("body")));
                self.scopes.pop();
                res?;
                if let Some(n) = name {
                    self.bind_tensor(n, self.current);
                }
                Ok(())
            }
            Statement::Use { block, with, name, from } => self.instantiate(block, with, name, from, path),
            Statement::Repeat { times, var, body } => {
                let n = self.size(times, path, "times", 0)?;
                let tpath = child(path, key("times"));
                if n > MAX_STEPS {
                    return Err(self.error(
                        &tpath,
                        format!(
                            "times: `{}` is {n}, more than the {MAX_STEPS} statements a network may \
                             expand to",
                            times.text
                        ),
                    ));
                }
                for i in 0..n {
                    self.step(&tpath)?;
                    self.env.push();
                    if let Some(v) = var {
                        self.env.bind(v, Value::Int(i as i64));
                    }
                    let res = self.body(body, &child(path, key("body")));
                    self.env.pop();
                    res?;
                }
                Ok(())
            }
            Statement::If { cond, then, otherwise } => {
                let cpath = child(path, key("cond"));
                let (body, field) = match self.eval(cond, &cpath)? {
                    Value::Bool(true) => (then, "then"),
                    Value::Bool(false) => (otherwise, "else"),
                    v => {
                        return Err(self.error(
                            &cpath,
                            format!("cond: `{}` is {}, expected true or false", cond.text, expr::kind(&v)),
                        ));
                    }
                };
                self.body(body, &child(path, key(field)))
            }
            Statement::Stages { names, vars, body } => self.stages(names, vars, body, path),
            Statement::Alias { name, from } => {
                let t = match from {
                    Some(f) => self.tensor(f, &child(path, key("from")))?,
                    None => x,
                };
                self.bind_tensor(name, t);
                self.current = t;
                Ok(())
            }
        }
    }

    /// Counts one statement or repeat iteration against `MAX_STEPS`.
    fn step(&mut self, path: &[Seg]) -> Result<()> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(self.error(
                path,
                format!(
                    "the network expands to more than {MAX_STEPS} statements; are repeat counts or \
                     nested blocks multiplying up?"
                ),
            ));
        }
        Ok(())
    }

    fn unary(&mut self, op: Op, x: Tensor, path: &[Seg]) -> Result<()> {
        let n = self.next_name(None, op.name());
        self.apply(op, &[x], n, path)?;
        Ok(())
    }

    fn conv(
        &mut self,
        conv: Conv,
        x: Tensor,
        bn: &Bn,
        act: Option<Act>,
        name: Option<&str>,
        path: &[Seg],
    ) -> Result<()> {
        // A named conv with an unnamed batch norm is a sub-module: name.0, name.1, name.2.
        let submodule = name.is_some() && *bn == Bn::On;
        if submodule {
            let prefix = self.next_name(name, "conv");
            self.scopes.push(Scope { prefix, naming: Naming::Indexed(0) });
        }
        let res = self.conv_bn_act(conv, x, bn, act, if submodule { None } else { name }, path);
        if submodule {
            self.scopes.pop();
        }
        res?;
        if let Some(n) = name {
            self.bind_tensor(n, self.current);
        }
        Ok(())
    }

    fn conv_bn_act(
        &mut self,
        conv: Conv,
        x: Tensor,
        bn: &Bn,
        act: Option<Act>,
        name: Option<&str>,
        path: &[Seg],
    ) -> Result<()> {
        let n = self.next_name(name, "conv");
        let mut y = self.apply(Op::Conv(conv), &[x], n, path)?[0];
        let bn_name = match bn {
            Bn::Off => None,
            Bn::On => Some(self.next_name(None, "batch_norm")),
            Bn::Named(n) => Some(self.next_name(Some(n), "batch_norm")),
        };
        if let Some(n) = bn_name {
            y = self.apply(Op::BatchNorm { eps: Float(1e-5) }, &[y], n, path)?[0];
        }
        if let Some(act) = act {
            let op = match act {
                Act::Relu => Op::Relu,
                Act::Relu6 => Op::Relu6,
                Act::Hardswish => Op::Hardswish,
                Act::Sigmoid => Op::Sigmoid,
            };
            self.unary(op, y, path)?;
        }
        Ok(())
    }

    fn split(
        &mut self,
        parts: &Option<Expression>,
        sizes: &Option<Expression>,
        names: &[String],
        from: &Option<String>,
        path: &[Seg],
    ) -> Result<()> {
        let x = match from {
            Some(f) => self.tensor(f, &child(path, key("from")))?,
            None => self.current,
        };
        let channels = self.graph.shape(x).dims().get(1).copied().unwrap_or(0);
        let sizes = match (parts, sizes) {
            (Some(p), None) => {
                let p = self.size(p, path, "parts", 2)?;
                if !channels.is_multiple_of(p) {
                    return Err(self.error(
                        &child(path, key("parts")),
                        format!("cannot split {channels} channels into {p} equal parts"),
                    ));
                }
                // Before the sizes are made: a part count in the billions would not fit in memory.
                self.split_names(p, names, path)?;
                vec![channels / p; p]
            }
            (None, Some(s)) => {
                let sizes = self.sizes(s, path, "sizes", 1)?;
                self.split_names(sizes.len(), names, path)?;
                sizes
            }
            _ => return Err(self.error(path, "Split needs exactly one of `parts` and `sizes`".to_string())),
        };
        let n = self.next_name(None, "split");
        let outs = self.apply(Op::Split { sizes }, &[x], n, path)?;
        for (name, t) in names.iter().zip(&outs) {
            self.bind_tensor(name, *t);
        }
        self.current = *outs.last().expect("a split has parts");
        Ok(())
    }

    fn split_names(&self, parts: usize, names: &[String], path: &[Seg]) -> Result<()> {
        if names.len() != parts {
            return Err(self.error(
                &child(path, key("names")),
                format!("Split makes {parts} parts but names {}", names.len()),
            ));
        }
        Ok(())
    }

    fn instantiate(
        &mut self,
        block_name: &str,
        with: &BTreeMap<String, Expression>,
        name: &Option<String>,
        from: &Option<String>,
        path: &[Seg],
    ) -> Result<()> {
        let Some(block) = self.blocks.get(block_name) else {
            let known: Vec<&str> = self.blocks.keys().map(String::as_str).collect();
            return Err(self.error(
                &child(path, key("block")),
                format!("unknown block `{block_name}`; the blocks are: {}", known.join(", ")),
            ));
        };
        if let Some(inst) = self.stack.iter().find(|i| i.block == block_name) {
            let chain: Vec<&str> = self.stack.iter().map(|i| i.block.as_str()).collect();
            return Err(self.error(
                path,
                format!(
                    "block `{block_name}` uses itself ({} -> {block_name}); blocks cannot be recursive (first use at {})",
                    chain.join(" -> "),
                    inst.used_at
                ),
            ));
        }
        let x = match from {
            Some(f) => self.tensor(f, &child(path, key("from")))?,
            None => self.current,
        };
        self.bind_input_dims(x);
        for p in &block.params {
            if !with.contains_key(p) {
                return Err(self.error(path, format!("block `{block_name}` needs parameter `{p}`")));
            }
        }
        let mut args = Env::new();
        for (g, v) in &self.globals {
            args.bind(g, v.clone());
        }
        args.push();
        for (p, e) in with {
            let epath = child(&child(path, key("with")), Seg::Key(p.clone()));
            if !block.params.contains(p) {
                return Err(self.error(
                    &epath,
                    format!(
                        "block `{block_name}` has no parameter `{p}`; its parameters are: {}",
                        block.params.join(", ")
                    ),
                ));
            }
            args.bind(p, self.eval(e, &epath)?);
        }
        let module = self.next_name(name.as_deref(), block_name);
        let used_at = self.location(path);
        let saved_env = std::mem::replace(&mut self.env, args);
        self.stack.push(Instance { block: block_name.to_string(), module: module.clone(), used_at });
        self.scopes.push(Scope { prefix: module, naming: Naming::ByOp(BTreeMap::new()) });
        self.frames.push(BTreeMap::from([("input".to_string(), x)]));
        self.current = x;
        let res = self.body(&block.body, &[key("blocks"), Seg::Key(block_name.to_string()), key("body")]);
        self.frames.pop();
        self.scopes.pop();
        self.stack.pop();
        self.env = saved_env;
        res?;
        if let Some(n) = name {
            self.bind_tensor(n, self.current);
        }
        Ok(())
    }

    fn stages(
        &mut self,
        names: &[String],
        vars: &BTreeMap<String, Expression>,
        body: &[Statement],
        path: &[Seg],
    ) -> Result<()> {
        if let Some(k) = (1..names.len()).find(|&k| names[..k].contains(&names[k])) {
            return Err(self.error(
                &child(&child(path, key("names")), Seg::Index(k)),
                format!("stage `{}` is named twice; its layers' names would clash", names[k]),
            ));
        }
        let mut lists = Vec::new();
        for (var, e) in vars {
            let vpath = child(&child(path, key("vars")), Seg::Key(var.clone()));
            match self.eval(e, &vpath)? {
                Value::List(items) if items.len() == names.len() => lists.push((var, items)),
                Value::List(items) => {
                    return Err(self.error(
                        &vpath,
                        format!(
                            "`{}` has {} values but there are {} stages",
                            e.text,
                            items.len(),
                            names.len()
                        ),
                    ));
                }
                v => {
                    return Err(
                        self.error(&vpath, format!("`{}` is {}, expected a list", e.text, expr::kind(&v)))
                    );
                }
            }
        }
        for (k, stage) in names.iter().enumerate() {
            self.env.push();
            for (var, items) in &lists {
                self.env.bind(var, items[k].clone());
            }
            let prefix = self.next_name(Some(stage), "stage");
            self.scopes.push(Scope { prefix, naming: Naming::Indexed(0) });
            let input = self.current;
            self.bind_input_dims(input);
            let res = self.body(body, &child(path, key("body")));
            self.scopes.pop();
            self.env.pop();
            res?;
            self.bind_tensor(stage, self.current);
        }
        Ok(())
    }
}
