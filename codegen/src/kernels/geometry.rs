//! The geometry of a sliding-window layer (convolution or pooling), shared by every kernel
//! that walks windows: the CPU window kernels, the training convolutions and the GPU kernels.

use std::ops::Range;

use ir::{Conv, Op};

/// A window layer's kernel, stride, padding and dilation along height and width, and the
/// planes it reads and writes.
#[derive(Clone, Copy)]
pub(crate) struct Window {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    /// The input plane's `[rows, columns]`.
    pub input: [usize; 2],
    /// The output plane's.
    pub output: [usize; 2],
}

impl Window {
    /// The windows of `op`, a convolution or a pool, from an NCHW input of dimensions `input`
    /// to one of dimensions `output`.
    pub fn of(op: &Op, input: &[usize], output: &[usize]) -> Window {
        match op {
            Op::Conv(conv) => Window::of_conv(conv, input, output),
            Op::MaxPool(p) | Op::AvgPool(p) => Window {
                kernel: p.kernel,
                stride: p.stride,
                padding: p.padding,
                dilation: [1, 1],
                input: [input[2], input[3]],
                output: [output[2], output[3]],
            },
            op => unreachable!("{} has no windows", op.name()),
        }
    }

    /// The input rows that the windows of output rows `rows` (not empty) read, padding left out.
    pub fn input_rows(&self, rows: Range<usize>) -> Range<usize> {
        let (stride, top, h) = (self.stride[0], self.padding[0], self.input[0]);
        let span = (self.kernel[0] - 1) * self.dilation[0] + 1;
        let first = (rows.start * stride).saturating_sub(top).min(h);
        let end = ((rows.end - 1) * stride + span).saturating_sub(top).min(h);
        first..end.max(first)
    }

    /// The windows of convolution `conv`, as [`Window::of`].
    pub fn of_conv(conv: &Conv, input: &[usize], output: &[usize]) -> Window {
        Window {
            kernel: conv.kernel,
            stride: conv.stride,
            padding: conv.padding,
            dilation: conv.dilation,
            input: [input[2], input[3]],
            output: [output[2], output[3]],
        }
    }
}
