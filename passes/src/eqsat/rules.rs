//! The rewrite rules, in one table. Every rule keeps the program's value; the cost model decides
//! which of the equal forms survive extraction.
//!
//! Channel plumbing is algebra: a channel shuffle, a split part and a reshape-transpose-reshape
//! shuffle all become `gather` (a channel selection), gathers compose and cancel, travel through
//! per-channel ops (activations, pools, batch norm and depthwise convs, whose weights are
//! permuted to match) and are absorbed into the weights of a dense conv or linear layer.

use egg::{Applier, Id, PatternAst, Rewrite, Subst, Symbol, Var, rewrite};

use super::analysis::{Graph, Info, Shapes};
use super::lang::{Attr, Tensor};

/// The rules of `-O2`.
#[rustfmt::skip]
pub fn all() -> Vec<Rewrite<Tensor, Shapes>> {
    vec![
        rewrite!("conv-bn-fold";        "(batch_norm ?o (conv ?c ?x ?w ?b) ?g ?be ?m ?v)"
                                        => "(conv ?c ?x (fold_weight ?o ?g ?v ?w) (fold_bias ?o ?g ?be ?m ?v ?b))"),
        rewrite!("shuffle-to-gather";   "(channel_shuffle ?a ?x)"                  => { Compute(shuffle_to_gather) }),
        rewrite!("rtr-to-gather";       "(reshape ?s (transpose ?t (reshape ?r ?x)))" => { Compute(reshape_transpose_to_gather) }),
        rewrite!("split-to-gather";     "(get ?k (split ?s ?x))"                   => { Compute(split_to_gather) }),
        rewrite!("gather-gather";       "(gather ?i (gather ?j ?x))"               => { Compute(compose) }),
        rewrite!("gather-identity";     "(gather ?i ?x)"                           => { Compute(identity) }),
        rewrite!("gather-concat";       "(gather ?i (concat ?a ?b))"               => { Compute(gather_of_concat) }),
        rewrite!("concat-gathers";      "(concat (gather ?i ?x) (gather ?j ?x))"   => { Compute(concat_of_gathers) }),
        rewrite!("relu-gather";         "(relu (gather ?i ?x))"                    => "(gather ?i (relu ?x))"),
        rewrite!("relu6-gather";        "(relu6 (gather ?i ?x))"                   => "(gather ?i (relu6 ?x))"),
        rewrite!("hardswish-gather";    "(hardswish (gather ?i ?x))"               => "(gather ?i (hardswish ?x))"),
        rewrite!("sigmoid-gather";      "(sigmoid (gather ?i ?x))"                 => "(gather ?i (sigmoid ?x))"),
        rewrite!("max-pool-gather";     "(max_pool ?a (gather ?i ?x))"             => "(gather ?i (max_pool ?a ?x))"),
        rewrite!("avg-pool-gather";     "(avg_pool ?a (gather ?i ?x))"             => "(gather ?i (avg_pool ?a ?x))"),
        rewrite!("global-pool-gather";  "(global_avg_pool (gather ?i ?x))"         => "(gather ?i (global_avg_pool ?x))"),
        rewrite!("add-gather";          "(add (gather ?i ?a) (gather ?i ?b))"      => "(gather ?i (add ?a ?b))" if same_channels("?a", "?b")),
        rewrite!("mul-gather";          "(mul (gather ?i ?a) (gather ?i ?b))"      => "(gather ?i (mul ?a ?b))" if same_channels("?a", "?b")),
        rewrite!("bn-gather";           "(batch_norm ?o (gather ?i ?x) ?g ?b ?m ?v)" => { Compute(batch_norm_of_permutation) }),
        rewrite!("depthwise-gather";    "(conv ?o (gather ?i ?x) ?w ?b)"           => { Compute(depthwise_of_permutation) }),
        rewrite!("conv-absorbs-gather"; "(conv ?o (gather ?i ?x) ?w ?b)"           => { Compute(conv_absorbs_permutation) }),
        rewrite!("linear-absorbs-gather"; "(linear ?o (gather ?i ?x) ?w ?b)"       => { Compute(conv_absorbs_permutation) }),
    ]
}

fn same_channels(a: &'static str, b: &'static str) -> impl Fn(&mut Graph, Id, &Subst) -> bool {
    move |egraph, _, subst| n_channels(egraph, subst, a) == n_channels(egraph, subst, b)
}

/// The rules of `-O1`: folding only.
pub fn folding() -> Vec<Rewrite<Tensor, Shapes>> {
    all().into_iter().filter(|r| r.name.as_str() == "conv-bn-fold").collect()
}

/// An applier computed in Rust: returns the class equal to the match, or `None` when the
/// rule's condition does not hold.
struct Compute(fn(&mut Graph, Id, &Subst) -> Option<Id>);

impl Applier<Tensor, Shapes> for Compute {
    fn apply_one(
        &self,
        egraph: &mut Graph,
        eclass: Id,
        subst: &Subst,
        _ast: Option<&PatternAst<Tensor>>,
        _rule: Symbol,
    ) -> Vec<Id> {
        match (self.0)(egraph, eclass, subst) {
            Some(new) if egraph.union(eclass, new) => vec![new],
            _ => Vec::new(),
        }
    }
}

fn var(name: &str) -> Var {
    name.parse().expect("a valid pattern variable")
}

fn data<'a>(egraph: &'a Graph, subst: &Subst, name: &str) -> &'a Info {
    &egraph[subst[var(name)]].data
}

fn channels<'a>(egraph: &'a Graph, subst: &Subst, name: &str) -> &'a [usize] {
    match data(egraph, subst, name).attr() {
        Attr::Channels(c) => c,
        other => panic!("expected channels, found `{other}`"),
    }
}

fn op<'a>(egraph: &'a Graph, subst: &Subst, name: &str) -> &'a ir::Op {
    match data(egraph, subst, name).attr() {
        Attr::Op(op) => op,
        other => panic!("expected op attributes, found `{other}`"),
    }
}

fn n_channels(egraph: &Graph, subst: &Subst, name: &str) -> usize {
    data(egraph, subst, name).shape().channels()
}

/// Adds `(gather channels x)`.
fn gather(egraph: &mut Graph, channels: Vec<usize>, x: Id) -> Id {
    let c = egraph.add(Tensor::Attr(Attr::Channels(channels)));
    egraph.add(Tensor::Gather([c, x]))
}

/// The inverse of `perm` when it is a permutation of `0..n` other than the identity (which
/// `gather-identity` removes; rewriting through it would only add equal nodes every iteration).
fn inverse(perm: &[usize], n: usize) -> Option<Vec<usize>> {
    if perm.len() != n || perm.iter().enumerate().all(|(k, &p)| k == p) {
        return None;
    }
    let mut inv = vec![usize::MAX; n];
    for (k, &p) in perm.iter().enumerate() {
        if p >= n || inv[p] != usize::MAX {
            return None;
        }
        inv[p] = k;
    }
    Some(inv)
}

fn shuffle_to_gather(egraph: &mut Graph, _matched: Id, subst: &Subst) -> Option<Id> {
    let ir::Op::ChannelShuffle { groups } = *op(egraph, subst, "?a") else {
        unreachable!("matched a shuffle")
    };
    let c = n_channels(egraph, subst, "?x");
    // Output channel o = k * groups + g reads input channel g * (c / groups) + k.
    let channels = (0..c).map(|o| (o % groups) * (c / groups) + o / groups).collect();
    Some(gather(egraph, channels, subst[var("?x")]))
}

/// Recognizes reshape -> transpose -> reshape chains that only reorder channels (PyTorch's way
/// of writing a shuffle): reshapes keep the row-major order, so the chain moves elements as its
/// transpose does, and it is a channel permutation when every output plane is a whole input
/// plane, in order.
fn reshape_transpose_to_gather(egraph: &mut Graph, matched: Id, subst: &Subst) -> Option<Id> {
    let x = data(egraph, subst, "?x").shape().clone();
    let result = egraph[matched].data.shape();
    if result != &x || x.rank() < 2 {
        return None;
    }
    let (ir::Op::Reshape { shape }, ir::Op::Transpose { perm }) =
        (op(egraph, subst, "?r"), op(egraph, subst, "?t"))
    else {
        unreachable!("matched a reshape and a transpose")
    };
    let item: Vec<usize> = std::iter::once(1).chain(shape.iter().copied()).collect();
    let sources = ir::eval::transpose_sources(&item, perm);
    let inner = x.item_numel() / x.channels();
    let mut channels = Vec::with_capacity(x.channels());
    for plane in sources.chunks(inner) {
        let first = plane[0];
        let intact = first.is_multiple_of(inner) && plane.iter().enumerate().all(|(j, &v)| v == first + j);
        if !intact {
            return None;
        }
        channels.push(first / inner);
    }
    Some(gather(egraph, channels, subst[var("?x")]))
}

fn split_to_gather(egraph: &mut Graph, _matched: Id, subst: &Subst) -> Option<Id> {
    let Attr::Index(k) = *data(egraph, subst, "?k").attr() else { unreachable!("get takes an index") };
    let ir::Op::Split { sizes } = op(egraph, subst, "?s") else { unreachable!("matched a split") };
    let start: usize = sizes[..k].iter().sum();
    let channels = (start..start + sizes[k]).collect();
    Some(gather(egraph, channels, subst[var("?x")]))
}

fn compose(egraph: &mut Graph, _matched: Id, subst: &Subst) -> Option<Id> {
    let (outer, inner) = (channels(egraph, subst, "?i"), channels(egraph, subst, "?j"));
    let composed = outer.iter().map(|&k| inner[k]).collect();
    Some(gather(egraph, composed, subst[var("?x")]))
}

fn identity(egraph: &mut Graph, _matched: Id, subst: &Subst) -> Option<Id> {
    let selected = channels(egraph, subst, "?i");
    let c = n_channels(egraph, subst, "?x");
    (selected.len() == c && selected.iter().enumerate().all(|(k, &ch)| k == ch)).then(|| subst[var("?x")])
}

fn gather_of_concat(egraph: &mut Graph, _matched: Id, subst: &Subst) -> Option<Id> {
    let selected = channels(egraph, subst, "?i").to_vec();
    let split = n_channels(egraph, subst, "?a");
    if selected.iter().all(|&c| c < split) {
        Some(gather(egraph, selected, subst[var("?a")]))
    } else if selected.iter().all(|&c| c >= split) {
        Some(gather(egraph, selected.iter().map(|c| c - split).collect(), subst[var("?b")]))
    } else {
        None
    }
}

fn concat_of_gathers(egraph: &mut Graph, _matched: Id, subst: &Subst) -> Option<Id> {
    let mut joined = channels(egraph, subst, "?i").to_vec();
    joined.extend_from_slice(channels(egraph, subst, "?j"));
    Some(gather(egraph, joined, subst[var("?x")]))
}

/// `(rows inverse w)`: per-channel parameters reordered to follow a permutation.
fn permute_rows(egraph: &mut Graph, inv: &[usize], w: Id) -> Id {
    let c = egraph.add(Tensor::Attr(Attr::Channels(inv.to_vec())));
    egraph.add(Tensor::Rows([c, w]))
}

fn batch_norm_of_permutation(egraph: &mut Graph, _matched: Id, subst: &Subst) -> Option<Id> {
    let inv = inverse(channels(egraph, subst, "?i"), n_channels(egraph, subst, "?x"))?;
    let params = ["?g", "?b", "?m", "?v"].map(|p| permute_rows(egraph, &inv, subst[var(p)]));
    let bn = egraph.add(Tensor::BatchNorm([
        subst[var("?o")],
        subst[var("?x")],
        params[0],
        params[1],
        params[2],
        params[3],
    ]));
    Some(gather(egraph, channels(egraph, subst, "?i").to_vec(), bn))
}

fn depthwise_of_permutation(egraph: &mut Graph, _matched: Id, subst: &Subst) -> Option<Id> {
    let ir::Op::Conv(conv) = op(egraph, subst, "?o") else { unreachable!("matched a conv") };
    let c = n_channels(egraph, subst, "?x");
    if !(conv.groups == c && conv.out_channels == c) {
        return None;
    }
    let inv = inverse(channels(egraph, subst, "?i"), c)?;
    let (w, b) = (permute_rows(egraph, &inv, subst[var("?w")]), permute_rows(egraph, &inv, subst[var("?b")]));
    let dw = egraph.add(Tensor::Conv([subst[var("?o")], subst[var("?x")], w, b]));
    Some(gather(egraph, channels(egraph, subst, "?i").to_vec(), dw))
}

/// A dense conv or a linear layer reading permuted channels reads the originals with its
/// input columns permuted instead.
fn conv_absorbs_permutation(egraph: &mut Graph, _matched: Id, subst: &Subst) -> Option<Id> {
    let dense = match op(egraph, subst, "?o") {
        ir::Op::Conv(conv) => conv.groups == 1,
        _ => true,
    };
    if !dense {
        return None;
    }
    let inv = inverse(channels(egraph, subst, "?i"), n_channels(egraph, subst, "?x"))?;
    let c = egraph.add(Tensor::Attr(Attr::Channels(inv)));
    let w = egraph.add(Tensor::Cols([c, subst[var("?w")]]));
    let (o, x, b) = (subst[var("?o")], subst[var("?x")], subst[var("?b")]);
    let node = match op(egraph, subst, "?o") {
        ir::Op::Conv(_) => Tensor::Conv([o, x, w, b]),
        _ => Tensor::Linear([o, x, w, b]),
    };
    Some(egraph.add(node))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eqsat::{Limits, optimize};

    /// A network over an 8-channel 4x4 input with `body` as its statements.
    fn network(body: &str) -> ir::Graph {
        crate::test_network(2, 8, 4, body)
    }

    /// Saturates with every rule; returns how often `rule` applied, after checking that the
    /// optimized graph computes what the original does.
    fn applications(rule: &str, body: &str) -> usize {
        let graph = network(body);
        let weights = ir::Weights::seeded(&graph, 5);
        let limits = Limits { nodes: 10_000, iterations: 20, time: std::time::Duration::from_secs(600) };
        let (optimized, new_weights, report) = optimize(&graph, &weights, &all(), &limits);
        ir::verify(&optimized).unwrap();
        let x =
            ir::Tensor::new(&[2, 8, 4, 4], (0..256).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect());
        let want = ir::eval::eval(&graph, &weights, std::slice::from_ref(&x)).unwrap();
        let got = ir::eval::eval(&optimized, &new_weights, &[x]).unwrap();
        let err = got[0].relative_error(&want[0]);
        assert!(err < 1e-5, "{rule} on `{body}`: relative error {err}\n{}", ir::print::to_text(&optimized));
        report.applied.get(rule).copied().unwrap_or(0)
    }

    const SHUFFLE_RTR: &str =
        "Reshape(shape: [2, 4, 4, 4]), Transpose(perm: [1, 0, 2, 3]), Reshape(shape: [8, 4, 4])";

    /// Each rule with a network where it must apply and one where it must not.
    #[rustfmt::skip]
    const CASES: &[(&str, &str, &str)] = &[
        ("conv-bn-fold", "Conv(out: 8, kernel: 3), BatchNorm()", "Relu, BatchNorm()"),
        ("shuffle-to-gather", "ChannelShuffle(groups: 2)", "Relu"),
        ("rtr-to-gather", SHUFFLE_RTR,
            "Reshape(shape: [8, 4, 4]), Transpose(perm: [0, 2, 1]), Reshape(shape: [8, 4, 4])"),
        ("split-to-gather", r#"Split(parts: 2, names: ["a", "b"]), Concat(["b", "a"])"#, "Relu"),
        ("gather-gather", "ChannelShuffle(groups: 2), ChannelShuffle(groups: 4)", "ChannelShuffle(groups: 2)"),
        ("gather-identity", "ChannelShuffle(groups: 2), ChannelShuffle(groups: 4)", "ChannelShuffle(groups: 2)"),
        ("gather-concat",
            r#"Split(parts: 2, names: ["a", "b"]), Concat(["b", "a"]), Split(parts: 2, names: ["c", "d"]), Concat(["d", "c"])"#,
            r#"Split(parts: 2, names: ["a", "b"]), Concat(["b", "a"]), ChannelShuffle(groups: 2), Split(parts: 2, names: ["c", "d"]), Concat(["d", "c"])"#),
        ("concat-gathers", r#"Split(parts: 2, names: ["a", "b"]), Concat(["a", "b"])"#,
            r#"Split(parts: 2, names: ["a", "b"]), Sequence(name: "r", from: "b", body: [Relu]), Concat(["a", "r"])"#),
        ("relu-gather", "ChannelShuffle(groups: 2), Relu", "Relu, Sigmoid"),
        ("relu6-gather", "ChannelShuffle(groups: 2), Relu6", "Relu6"),
        ("hardswish-gather", "ChannelShuffle(groups: 2), Hardswish", "Hardswish"),
        ("sigmoid-gather", "ChannelShuffle(groups: 2), Sigmoid", "Sigmoid"),
        ("max-pool-gather", "ChannelShuffle(groups: 2), MaxPool(kernel: 2)", "MaxPool(kernel: 2)"),
        ("avg-pool-gather", "ChannelShuffle(groups: 2), AvgPool(kernel: 2)", "AvgPool(kernel: 2)"),
        ("global-pool-gather", "ChannelShuffle(groups: 2), GlobalAvgPool", "GlobalAvgPool"),
        ("add-gather", r#"ChannelShuffle(groups: 2), Alias(name: "s"), Add(["s", "s"])"#,
            r#"ChannelShuffle(groups: 2), Alias(name: "s"), Alias(name: "x", from: "input"), Add(["s", "x"])"#),
        ("mul-gather", r#"ChannelShuffle(groups: 2), Alias(name: "s"), Mul(["s", "s"])"#,
            r#"ChannelShuffle(groups: 2), Alias(name: "s"), Alias(name: "x", from: "input"), Mul(["s", "x"])"#),
        ("bn-gather", "ChannelShuffle(groups: 2), BatchNorm()",
            r#"Split(parts: 2, names: ["a", "b"]), BatchNorm()"#),
        ("depthwise-gather", "ChannelShuffle(groups: 2), Conv(out: 8, kernel: 3, groups: 8, bias: true)",
            "ChannelShuffle(groups: 2), Conv(out: 8, kernel: 3, groups: 2)"),
        ("conv-absorbs-gather", "ChannelShuffle(groups: 2), Conv(out: 6, kernel: 1)",
            r#"Split(parts: 2, names: ["a", "b"]), Conv(out: 6, kernel: 1)"#),
        ("linear-absorbs-gather", "ChannelShuffle(groups: 2), Linear(out: 3)",
            r#"Split(parts: 2, names: ["a", "b"]), GlobalAvgPool, Linear(out: 3)"#),
    ];

    #[test]
    fn every_rule_has_cases() {
        let names: Vec<&str> = all().iter().map(|r| r.name.as_str()).collect();
        let covered: Vec<&str> = CASES.iter().map(|c| c.0).collect();
        assert_eq!(names, covered, "every rule needs an applies/does-not-apply case, in table order");
    }

    #[test]
    fn rules_apply_where_they_should() {
        for &(rule, applies, _) in CASES {
            assert!(applications(rule, applies) > 0, "{rule} did not apply to `{applies}`");
        }
    }

    #[test]
    fn rules_do_not_apply_where_they_must_not() {
        for &(rule, _, must_not) in CASES {
            assert_eq!(applications(rule, must_not), 0, "{rule} applied to `{must_not}`");
        }
    }

    #[test]
    fn common_subexpressions_are_shared() {
        let graph = network(
            r#"Sequence(name: "a", from: "input", body: [Relu, MaxPool(kernel: 2)]),
               Sequence(name: "b", from: "input", body: [Relu, MaxPool(kernel: 2)]), Add(["a", "b"])"#,
        );
        let weights = ir::Weights::default();
        let (optimized, _, _) = optimize(&graph, &weights, &all(), &Limits::default());
        let ops: Vec<&str> = optimized.node_ids().map(|id| optimized.node(id).op.name()).collect();
        assert_eq!(ops, ["input", "relu", "max_pool", "add"], "{}", ir::print::to_text(&optimized));
    }

    #[test]
    fn shufflenet_unit_keeps_no_channel_plumbing_copies() {
        let unit = r#"Split(parts: 2, names: ["keep", "x"]),
            Sequence(name: "b", from: "x", body: [Conv(out: 4, kernel: 1, bn: true, act: Relu)]),
            Concat(["keep", "b"]), ChannelShuffle(groups: 2),
            Split(parts: 2, names: ["keep2", "x2"]),
            Sequence(name: "b2", from: "x2", body: [Conv(out: 4, kernel: 1, bn: true, act: Relu)]),
            Concat(["keep2", "b2"]), ChannelShuffle(groups: 2), Conv(out: 8, kernel: 1)"#;
        let graph = network(unit);
        let weights = ir::Weights::seeded(&graph, 1);
        let limits = Limits { nodes: 10_000, iterations: 20, time: std::time::Duration::from_secs(600) };
        let (optimized, _, _) = optimize(&graph, &weights, &all(), &limits);
        let ops: Vec<&str> = optimized.node_ids().map(|id| optimized.node(id).op.name()).collect();
        for gone in ["channel_shuffle", "split", "batch_norm"] {
            assert!(!ops.contains(&gone), "{gone} left:\n{}", ir::print::to_text(&optimized));
        }
    }
}
