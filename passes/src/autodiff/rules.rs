//! The gradient of each forward op: which training ops turn the gradients of a node's
//! outputs into gradients of its operands and parameters.

use ir::{Activation, NodeId, Op, ParamKind, TrainOp, Value};

use super::{Backward, Error};

/// Adds the gradient ops of forward node `id`, whose outputs' copies are `outputs` and whose
/// outputs' gradients are `dys` (at least one is known).
pub(super) fn backward(
    b: &mut Backward<'_>,
    id: NodeId,
    outputs: &[Value],
    dys: &[Option<Value>],
) -> Result<(), Error> {
    let forward = b.forward;
    let node = forward.node(id);
    let name = node.name.clone();
    let fail = |message: String| Error { node: name.clone(), message };
    let operands = forward.operands(id);
    let x: Vec<Value> = operands.iter().map(|v| b.copies[v]).collect();
    let item_dims = |k: usize| forward.shape(operands[k]).item_dims().to_vec();
    let hw = |k: usize| {
        let d = item_dims(k);
        [d[1], d[2]]
    };
    if let Op::Split { .. } = node.op {
        let parts: Option<Vec<Value>> = dys.iter().copied().collect();
        let parts =
            parts.ok_or_else(|| fail("a part of this split is unused, so it has no gradient".into()))?;
        return b.grad_operand(0, &operands, &x, Op::Concat, &parts, &name);
    }
    let dy = dys[0].expect("single-output nodes with no gradient are skipped");
    match &node.op {
        Op::Conv(conv) => {
            let d = item_dims(0);
            let op = TrainOp::ConvGradInput { conv: conv.clone(), input: [d[0], d[1], d[2]] };
            b.grad_operand(0, &operands, &x, op, &[dy], &name)?;
            b.param(&name, ParamKind::Weight, true, TrainOp::ConvGradWeight(conv.clone()), &[x[0], dy])?;
            if conv.bias {
                b.param(&name, ParamKind::Bias, false, TrainOp::ChannelSum, &[dy])?;
            }
        }
        Op::BatchNorm { .. } => {
            // The training-mode copy's outputs 1 and 2 are the batch mean and 1 / std.
            let stat = |port| Value { node: outputs[0].node, port };
            let grads = b.op(TrainOp::BatchNormGrad, &[x[0], dy, stat(1), stat(2)], &name)?;
            b.param_grads.push((name.clone(), ParamKind::Weight, false, grads[1]));
            b.param_grads.push((name.clone(), ParamKind::Bias, false, grads[2]));
            if b.needs_grad(operands[0]) {
                b.accumulate(x[0], grads[0])?;
            }
        }
        Op::Relu | Op::Relu6 | Op::Hardswish | Op::Sigmoid => {
            let activation = Activation::of(&node.op).expect("an activation");
            let op = TrainOp::ActivationGrad(activation);
            b.grad_operand(0, &operands, &x, op, &[x[0], dy], &format!("{name}/grad"))?;
        }
        Op::Add => {
            for k in 0..2 {
                if b.needs_grad(operands[k]) {
                    b.accumulate(x[k], dy)?;
                }
            }
        }
        Op::Mul => {
            b.grad_operand(0, &operands, &x, Op::Mul, &[dy, x[1]], &format!("{name}/grad"))?;
            // A channel scale `[n, c, 1, 1]` sums its gradient over the pixels it scaled.
            let op = if forward.shape(operands[0]) == forward.shape(operands[1]) {
                Op::Mul
            } else {
                TrainOp::SpatialDot.into()
            };
            b.grad_operand(1, &operands, &x, op, &[dy, x[0]], &format!("{name}/grad1"))?;
        }
        Op::Concat => {
            if x.len() == 1 {
                return b.pass_grad(0, &operands, &x, dy);
            }
            let sizes = operands.iter().map(|&v| forward.shape(v).channels()).collect();
            let parts = b.op(Op::Split { sizes }, &[dy], &format!("{name}/grad"))?;
            for (k, part) in parts.into_iter().enumerate() {
                b.pass_grad(k, &operands, &x, part)?;
            }
        }
        Op::Gather { .. } | Op::ChannelShuffle { .. } => {
            let channels = permutation(&node.op, forward.shape(operands[0]).channels());
            let mut inverse = vec![usize::MAX; channels.len()];
            for (i, &c) in channels.iter().enumerate() {
                if let Some(slot) = inverse.get_mut(c).filter(|s| **s == usize::MAX) {
                    *slot = i;
                }
            }
            if channels.len() != forward.shape(operands[0]).channels() || inverse.contains(&usize::MAX) {
                return Err(fail(
                    "training handles gathers that permute channels, not ones that drop or repeat them"
                        .into(),
                ));
            }
            let op = Op::Gather { channels: inverse };
            b.grad_operand(0, &operands, &x, op, &[dy], &format!("{name}/grad"))?;
        }
        Op::MaxPool(pool) => {
            b.grad_operand(
                0,
                &operands,
                &x,
                TrainOp::MaxPoolGrad(pool.clone()),
                &[x[0], dy],
                &format!("{name}/grad"),
            )?;
        }
        Op::AvgPool(pool) => {
            let op = TrainOp::AvgPoolGrad { pool: pool.clone(), input: hw(0) };
            b.grad_operand(0, &operands, &x, op, &[dy], &format!("{name}/grad"))?;
        }
        Op::GlobalAvgPool => {
            b.grad_operand(
                0,
                &operands,
                &x,
                TrainOp::GlobalAvgPoolGrad { input: hw(0) },
                &[dy],
                &format!("{name}/grad"),
            )?;
        }
        Op::Linear { bias, .. } => {
            if b.needs_grad(operands[0]) {
                let in_features = forward.shape(operands[0]).item_numel();
                let mut dx = b.op(TrainOp::LinearGradInput { in_features }, &[dy], &name)?[0];
                if forward.shape(operands[0]).rank() > 2 {
                    dx = b.op(Op::Reshape { shape: item_dims(0) }, &[dx], &format!("{name}/grad"))?[0];
                }
                b.accumulate(x[0], dx)?;
            }
            b.param(&name, ParamKind::Weight, true, TrainOp::LinearGradWeight, &[x[0], dy])?;
            if *bias {
                b.param(&name, ParamKind::Bias, false, TrainOp::ChannelSum, &[dy])?;
            }
        }
        Op::Flatten | Op::Reshape { .. } => {
            b.grad_operand(
                0,
                &operands,
                &x,
                Op::Reshape { shape: item_dims(0) },
                &[dy],
                &format!("{name}/grad"),
            )?;
        }
        Op::Softmax => {
            b.grad_operand(
                0,
                &operands,
                &x,
                TrainOp::SoftmaxGrad,
                &[outputs[0], dy],
                &format!("{name}/grad"),
            )?;
        }
        Op::Transpose { perm } => {
            let mut inverse = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inverse[p] = i;
            }
            b.grad_operand(
                0,
                &operands,
                &x,
                Op::Transpose { perm: inverse },
                &[dy],
                &format!("{name}/grad"),
            )?;
        }
        Op::Split { .. } => unreachable!("handled above"),
        Op::Input | Op::Train(_) => unreachable!("inputs end the walk; training ops are not copied"),
    }
    Ok(())
}

impl Backward<'_> {
    /// Adds `op` over `args` as the gradient of operand `k` (whose forward value is
    /// `operands[k]` and copy `x[k]`), unless that gradient is not needed.
    fn grad_operand(
        &mut self,
        k: usize,
        operands: &[Value],
        x: &[Value],
        op: impl Into<Op>,
        args: &[Value],
        name: &str,
    ) -> Result<(), Error> {
        if !self.needs_grad(operands[k]) {
            return Ok(());
        }
        let grad = self.op(op, args, name)?[0];
        self.accumulate(x[k], grad)
    }

    /// Adds `grad` as the gradient of operand `k`, unless that gradient is not needed.
    fn pass_grad(&mut self, k: usize, operands: &[Value], x: &[Value], grad: Value) -> Result<(), Error> {
        if self.needs_grad(operands[k]) {
            self.accumulate(x[k], grad)?;
        }
        Ok(())
    }

    /// Adds the gradient of parameter `kind` of node `name`: `op` over `args`.
    fn param(
        &mut self,
        name: &str,
        kind: ParamKind,
        decays: bool,
        op: TrainOp,
        args: &[Value],
    ) -> Result<(), Error> {
        let grad = self.op(op, args, &format!("{name}/grad_{}", kind.suffix()))?[0];
        self.param_grads.push((name.to_string(), kind, decays, grad));
        Ok(())
    }
}

/// The input channel each output channel of a gather or a channel shuffle reads.
pub(super) fn permutation(op: &Op, channels: usize) -> Vec<usize> {
    match op {
        Op::Gather { channels } => channels.clone(),
        // Output channel `o` of a shuffle by `g` groups is input channel `(o % g) (c / g) + o / g`.
        Op::ChannelShuffle { groups } => {
            (0..channels).map(|o| (o % groups) * (channels / groups) + o / groups).collect()
        }
        _ => unreachable!("only gathers and shuffles permute channels"),
    }
}
