//! The dataflow graph: nodes are ops with static output shapes, edges carry tensors.

use petgraph::Direction;
use petgraph::stable_graph::{EdgeReference, NodeIndex, StableGraph};
use petgraph::visit::EdgeRef;

use crate::{Location, Op, Shape, infer};

/// A node's stable identity; it stays valid when other nodes are removed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct NodeId(NodeIndex);

/// One output of a node: the tensor flowing along an edge.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Value {
    /// The producing node.
    pub node: NodeId,
    /// Which of its outputs (only split has more than one).
    pub port: usize,
}

/// An op in the graph with its identity for people and weights.
#[derive(Clone, Debug)]
pub struct Node {
    /// What it computes.
    pub op: Op,
    /// Its name; parameter tensors are `{name}.{suffix}` (PyTorch `state_dict` names).
    pub name: String,
    /// The source statement it came from, for error messages.
    pub location: Option<Location>,
    /// The shape of each output.
    pub outputs: Vec<Shape>,
    /// Whether the node is a fused epilogue: computed inside the kernel that produces its first
    /// operand (an activation or residual add after a conv), so its input never reaches memory.
    pub epilogue: bool,
}

/// Which output of the source feeds which operand of the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Edge {
    port: usize,
    slot: usize,
}

/// A network: a DAG of ops over static shapes, with named inputs and ordered outputs.
#[derive(Clone, Debug)]
pub struct Graph {
    name: String,
    inner: StableGraph<Node, Edge>,
    inputs: Vec<NodeId>,
    outputs: Vec<Value>,
}

impl Graph {
    /// An empty graph.
    pub fn new(name: impl Into<String>) -> Graph {
        Graph { name: name.into(), inner: StableGraph::new(), inputs: Vec::new(), outputs: Vec::new() }
    }

    /// The network's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds an input of a fixed shape.
    pub fn add_input(&mut self, name: impl Into<String>, shape: Shape, location: Option<Location>) -> Value {
        let node = Node { op: Op::Input, name: name.into(), location, outputs: vec![shape], epilogue: false };
        let id = NodeId(self.inner.add_node(node));
        self.inputs.push(id);
        Value { node: id, port: 0 }
    }

    /// Adds `op` applied to `operands`, inferring its output shapes; one value per output.
    ///
    /// The error says why the shapes do not fit; nothing is added then.
    pub fn add(
        &mut self,
        op: Op,
        operands: &[Value],
        name: impl Into<String>,
        location: Option<Location>,
    ) -> Result<Vec<Value>, String> {
        let shapes: Vec<&Shape> = operands.iter().map(|&v| self.shape(v)).collect();
        let outputs = infer(&op, &shapes)?;
        let n_out = outputs.len();
        let id = self.inner.add_node(Node { op, name: name.into(), location, outputs, epilogue: false });
        for (slot, v) in operands.iter().enumerate() {
            self.inner.add_edge(v.node.0, id, Edge { port: v.port, slot });
        }
        Ok((0..n_out).map(|port| Value { node: NodeId(id), port }).collect())
    }

    /// Declares the graph's outputs, in order.
    pub fn set_outputs(&mut self, outputs: Vec<Value>) {
        self.outputs = outputs;
    }

    /// The input nodes, in the order they were added.
    pub fn inputs(&self) -> &[NodeId] {
        &self.inputs
    }

    /// The graph's outputs, in order.
    pub fn outputs(&self) -> &[Value] {
        &self.outputs
    }

    /// A node. Panics if `id` was removed (a bug in the caller).
    pub fn node(&self, id: NodeId) -> &Node {
        &self.inner[id.0]
    }

    /// The shape of a value.
    pub fn shape(&self, v: Value) -> &Shape {
        &self.node(v.node).outputs[v.port]
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.inner.node_count()
    }

    /// Whether the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.inner.node_count() == 0
    }

    /// The operands of a node, in operand order.
    pub fn operands(&self, id: NodeId) -> Vec<Value> {
        let mut edges: Vec<EdgeReference<'_, Edge>> =
            self.inner.edges_directed(id.0, Direction::Incoming).collect();
        edges.sort_by_key(|e| e.weight().slot);
        edges.iter().map(|e| Value { node: NodeId(e.source()), port: e.weight().port }).collect()
    }

    /// The operand slots of each node that reads `id`, as `(user, slot, port)`.
    pub fn users(&self, id: NodeId) -> Vec<(NodeId, usize, usize)> {
        let mut users: Vec<_> = self
            .inner
            .edges_directed(id.0, Direction::Outgoing)
            .map(|e| (NodeId(e.target()), e.weight().slot, e.weight().port))
            .collect();
        users.sort();
        users
    }

    /// The operand slots of every node, with their sources; used by `verify` to check that
    /// operand slots are numbered `0..n` without gaps.
    pub(crate) fn operand_slots(&self, id: NodeId) -> Vec<usize> {
        let mut slots: Vec<usize> =
            self.inner.edges_directed(id.0, Direction::Incoming).map(|e| e.weight().slot).collect();
        slots.sort_unstable();
        slots
    }

    /// All nodes in a deterministic topological order (dependencies first, ties broken by
    /// creation order), or the id of a node on a cycle.
    pub fn topo_order(&self) -> Result<Vec<NodeId>, NodeId> {
        let mut indegree: std::collections::BTreeMap<NodeIndex, usize> = self
            .inner
            .node_indices()
            .map(|n| (n, self.inner.edges_directed(n, Direction::Incoming).count()))
            .collect();
        let mut ready: std::collections::BTreeSet<NodeIndex> =
            indegree.iter().filter(|&(_, &d)| d == 0).map(|(&n, _)| n).collect();
        let mut order = Vec::with_capacity(indegree.len());
        while let Some(n) = ready.pop_first() {
            order.push(NodeId(n));
            for e in self.inner.edges_directed(n, Direction::Outgoing) {
                let d = indegree.get_mut(&e.target()).expect("edge targets a live node");
                *d -= 1;
                if *d == 0 {
                    ready.insert(e.target());
                }
            }
        }
        if order.len() < indegree.len() {
            let stuck = indegree.iter().find(|&(_, &d)| d > 0).map(|(&n, _)| n);
            return Err(NodeId(stuck.expect("some node is left on the cycle")));
        }
        Ok(order)
    }

    /// Marks or unmarks a node as a fused epilogue of its first operand's producer.
    pub fn set_epilogue(&mut self, id: NodeId, epilogue: bool) {
        self.inner[id.0].epilogue = epilogue;
    }

    /// Swaps the two operands of a commutative two-operand node (add, mul).
    pub fn swap_operands(&mut self, id: NodeId) {
        assert!(matches!(self.node(id).op, Op::Add | Op::Mul), "only add and mul commute");
        let edges: Vec<_> = self.inner.edges_directed(id.0, Direction::Incoming).map(|e| e.id()).collect();
        for e in edges {
            let w = &mut self.inner[e];
            w.slot = 1 - w.slot;
        }
    }

    /// Removes a node and its edges. Panics if another node still reads it, or if it is an
    /// input or produces a graph output: removing those would break the graph.
    pub fn remove(&mut self, id: NodeId) {
        assert!(self.users(id).is_empty(), "removing `{}`, which is still read", self.node(id).name);
        assert!(!self.inputs.contains(&id), "removing input `{}`", self.node(id).name);
        assert!(self.outputs.iter().all(|v| v.node != id), "removing output `{}`", self.node(id).name);
        self.inner.remove_node(id.0);
    }

    /// All node ids, in creation order.
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.inner.node_indices().map(NodeId)
    }
}
