//! A network's parameter tensors: seeded initialization, and safetensors files in and out.
//!
//! Tensors are named `{node}.{suffix}` like a PyTorch `state_dict`, so a torchvision model's
//! `safetensors.torch.save_file(model.state_dict(), path)` loads as it is. A file is checked
//! whole before anything is returned: every expected tensor present with its exact shape,
//! nothing extra (but `num_batches_tracked`, which inference does not use), and only finite
//! values.

use std::collections::BTreeMap;
use std::path::Path;

use crate::seeded::Rng;
use crate::{Error, Graph, Node, ParamSpec, Result, Tensor};

/// Parameter tensors by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Weights {
    tensors: BTreeMap<String, Tensor>,
}

/// Every parameter the graph owns: `(name, node, spec)`, in topological order (borrowed
/// parameters are their owner's).
pub fn expected_params(graph: &Graph) -> Vec<(String, &Node, ParamSpec)> {
    let order = graph.topo_order().expect("weights belong to verified, acyclic graphs");
    let mut params = Vec::new();
    for id in order {
        let node = graph.node(id);
        let Some(&first) = graph.operands(id).first() else { continue };
        for spec in node.op.params(graph.shape(first)).into_iter().filter(|s| !s.borrowed) {
            params.push((format!("{}.{}", node.name, spec.suffix), node, spec));
        }
    }
    params
}

impl Weights {
    /// Deterministic initialization, identical on every machine for a given seed:
    /// Kaiming-normal convolution and linear weights (`std = sqrt(2 / fan_in)`), zero biases,
    /// batch norm with weight 1, bias 0, running mean 0 and running variance 1.
    pub fn seeded(graph: &Graph, seed: u64) -> Weights {
        let mut tensors = BTreeMap::new();
        for (name, _, spec) in expected_params(graph) {
            let value = match spec.suffix {
                "weight" if spec.shape.len() >= 2 => {
                    let fan_in: usize = spec.shape[1..].iter().product();
                    let std = (2.0 / fan_in as f64).sqrt();
                    let mut rng = Rng::new(seed, &name);
                    let data = (0..spec.shape.iter().product::<usize>()).map(|_| (rng.normal() * std) as f32);
                    Tensor::new(&spec.shape, data.collect())
                }
                "weight" | "running_var" => Tensor::full(&spec.shape, 1.0),
                _ => Tensor::zeros(&spec.shape),
            };
            tensors.insert(name, value);
        }
        Weights { tensors }
    }

    /// Reads a safetensors file and checks it against what `graph` needs.
    pub fn load(graph: &Graph, path: &Path) -> Result<Weights> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| Error::Io { path: shown.clone(), source })?;
        Weights::from_safetensors(graph, &bytes, &shown)
    }

    /// Parses safetensors bytes (F32, F16, BF16 or F64) and checks them against `graph`;
    /// `file` names the source in errors.
    pub fn from_safetensors(graph: &Graph, bytes: &[u8], file: &str) -> Result<Weights> {
        let fail = |tensor: &str, message: String| Error::Weights {
            file: file.to_string(),
            tensor: tensor.to_string(),
            message,
        };
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| fail("", format!("not a safetensors file: {e}")))?;
        let expected = expected_params(graph);
        let mut tensors = BTreeMap::new();
        for (name, _, spec) in &expected {
            let view = st
                .tensor(name)
                .map_err(|_| fail(name, format!("missing; expected shape {:?}", spec.shape)))?;
            if view.shape() != spec.shape.as_slice() {
                return Err(fail(name, format!("expected shape {:?}, found {:?}", spec.shape, view.shape())));
            }
            let data = to_f32(view.dtype(), view.data()).map_err(|m| fail(name, m))?;
            if let Some(i) = data.iter().position(|x| !x.is_finite()) {
                return Err(fail(name, format!("element {i} is {}", data[i])));
            }
            tensors.insert(name.clone(), Tensor::new(&spec.shape, data));
        }
        let mut extra: Vec<String> = st
            .names()
            .into_iter()
            .filter(|n| !tensors.contains_key(*n) && !n.ends_with(".num_batches_tracked"))
            .map(str::to_string)
            .collect();
        extra.sort();
        if let Some(first) = extra.first() {
            return Err(fail(
                first,
                format!(
                    "the network has no such parameter ({} unexpected tensor(s): {})",
                    extra.len(),
                    extra.join(", ")
                ),
            ));
        }
        Ok(Weights { tensors })
    }

    /// Writes the tensors as an F32 safetensors file, atomically: a temporary file beside the
    /// target is renamed over it, so a failure never leaves half a file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let shown = path.display().to_string();
        let io = |source| Error::Io { path: shown.clone(), source };
        let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = self
            .tensors
            .iter()
            .map(|(name, t)| {
                (name.clone(), t.data.iter().flat_map(|x| x.to_le_bytes()).collect(), t.shape.clone())
            })
            .collect();
        let views = bytes
            .iter()
            .map(|(name, data, shape)| {
                let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                    .expect("shape and data agree by construction");
                (name.clone(), view)
            })
            .collect::<Vec<_>>();
        let serialized = safetensors::serialize(views, None).expect("f32 tensors always serialize");
        let tmp = path.with_extension("safetensors.partial");
        std::fs::write(&tmp, serialized).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// A tensor by its full name.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// A node's parameter; panics when it is missing, which `check` rules out.
    pub fn param(&self, node: &Node, suffix: &str) -> &Tensor {
        let name = format!("{}.{suffix}", node.name);
        self.tensors.get(&name).unwrap_or_else(|| panic!("no weights for `{name}`"))
    }

    /// Replaces or adds a tensor.
    pub fn insert(&mut self, name: impl Into<String>, tensor: Tensor) {
        self.tensors.insert(name.into(), tensor);
    }

    /// All tensors by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.tensors.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Checks that every parameter `graph` needs is here with its exact shape.
    pub fn check(&self, graph: &Graph) -> Result<()> {
        for (name, node, spec) in expected_params(graph) {
            let found = self.tensors.get(&name).map(|t| &t.shape);
            if found != Some(&spec.shape) {
                return Err(Error::Verify {
                    node: node.name.clone(),
                    location: node.location.clone(),
                    message: match found {
                        Some(shape) => {
                            format!("weights `{name}` have shape {shape:?}, expected {:?}", spec.shape)
                        }
                        None => format!("weights `{name}` are missing"),
                    },
                });
            }
        }
        Ok(())
    }
}

fn to_f32(dtype: safetensors::Dtype, data: &[u8]) -> std::result::Result<Vec<f32>, String> {
    use safetensors::Dtype;
    let chunks = |n: usize| data.chunks_exact(n);
    Ok(match dtype {
        Dtype::F32 => chunks(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Dtype::F64 => {
            chunks(8).map(|b| f64::from_le_bytes(b.try_into().expect("chunks of 8")) as f32).collect()
        }
        Dtype::F16 => chunks(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Dtype::BF16 => chunks(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        other => return Err(format!("has dtype {other:?}; archc reads F32, F16, BF16 and F64 weights")),
    })
}
