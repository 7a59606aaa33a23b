//! Each kernel against `ir::eval` over the shapes that break kernels: odd channel counts (not
//! multiples of any vector width or register tile), pixel counts from 1 up, strides, paddings,
//! dilations, groups, every fused epilogue, for the host's and the AVX2 vector shapes, on one
//! and three threads.

use ir::testing::{random_input, random_weights};
use passes::Level;

/// `(name, input [c, h, w], body)` of small networks, each stressing one kernel.
const CASES: &[(&str, [usize; 3], &str)] = &[
    ("pointwise_odd", [13, 5, 7], "Conv(out: 29, kernel: 1, bias: true, act: Relu)"),
    ("pointwise_one_pixel", [37, 1, 1], "Conv(out: 3, kernel: 1), Conv(out: 50, kernel: 1, act: Relu6)"),
    ("pointwise_wide", [8, 17, 19], "Conv(out: 40, kernel: 1, act: Hardswish)"),
    ("pointwise_groups", [12, 6, 6], "Conv(out: 18, kernel: 1, groups: 3, act: Sigmoid)"),
    (
        "residual",
        [10, 9, 9],
        r#"Alias(name: "x"), Conv(name: "c", out: 10, kernel: 1, bn: true), Add(["x", "c"]), Relu"#,
    ),
    (
        "residual_first",
        [6, 4, 5],
        r#"Alias(name: "x"), Conv(name: "c", out: 6, kernel: 3), Add(["c", "x"]), Relu6"#,
    ),
    (
        "stem",
        [3, 23, 21],
        "Conv(out: 24, kernel: 3, stride: 2, bn: true, act: Relu), MaxPool(kernel: 3, stride: 2, padding: 1)",
    ),
    (
        "direct_residual",
        [4, 9, 10],
        r#"Alias(name: "x"), Conv(name: "c", out: 4, kernel: 3, dilation: 2), Add(["c", "x"]), Relu"#,
    ),
    ("direct_tails", [2, 6, 37], "Conv(out: 13, kernel: 3, stride: 2, bias: true, act: Hardswish)"),
    (
        "shifted_valid",
        [7, 9, 11],
        "Conv(out: 9, kernel: 3, padding: 0, act: Relu), Conv(out: 5, kernel: 5, padding: 1)",
    ),
    ("winograd_odd", [9, 7, 5], "Conv(out: 11, kernel: 3, bias: true, act: Relu)"),
    (
        "winograd_residual",
        [16, 13, 18],
        r#"Alias(name: "x"), Conv(name: "c", out: 16, kernel: 3, bn: true), Add(["x", "c"]), Relu"#,
    ),
    (
        "winograd_paddings",
        [8, 20, 35],
        "Conv(out: 13, kernel: 3, padding: 0), Conv(out: 9, kernel: 3, padding: 2, act: Hardswish)",
    ),
    (
        "winograd_one_pixel",
        [8, 3, 3],
        "Conv(out: 8, kernel: 3, padding: 0), Conv(out: 10, kernel: 3, act: Relu6)",
    ),
    ("conv7", [3, 19, 18], "Conv(out: 17, kernel: 7, stride: 2, padding: 3)"),
    ("conv_grouped", [12, 9, 8], "Conv(out: 15, kernel: 3, groups: 3, bias: true)"),
    ("conv_dilated", [5, 11, 12], "Conv(out: 7, kernel: 3, dilation: 2, act: Relu)"),
    ("conv_stride2_1x1", [9, 8, 7], "Conv(out: 11, kernel: 1, stride: 2)"),
    // Receptive fields copied whole vectors at a time (consecutive or every other column) and
    // the rest of each row masked; with padding 0, the last vector's loads end at the row.
    (
        "im2col_vectors",
        [5, 20, 140],
        "Conv(out: 11, kernel: 3, stride: 2), Conv(out: 6, kernel: 3, stride: 2, padding: 0), \
         Conv(out: 7, kernel: 3, dilation: 2, padding: 1), Conv(out: 5, kernel: 1, stride: 2)",
    ),
    (
        "conv_no_padding",
        [4, 8, 9],
        "Conv(out: 5, kernel: 3, padding: 0), Conv(out: 6, kernel: 5, stride: 3, padding: 1)",
    ),
    ("depthwise3", [7, 13, 11], "Conv(out: 7, kernel: 3, groups: 7, bn: true, act: Relu)"),
    ("depthwise3_s2", [9, 12, 13], "Conv(out: 9, kernel: 3, stride: 2, groups: 9, bn: true)"),
    // Stride 2 over a row of two vectors of outputs: the second reads up to the padding.
    (
        "depthwise3_s2_wide",
        [3, 5, 31],
        "Conv(out: 3, kernel: 3, stride: 2, groups: 3, bn: true), MaxPool(kernel: 3, stride: 2, padding: 1)",
    ),
    // A 1x1 convolution and the depthwise one that alone reads it share a step.
    (
        "expand_depthwise",
        [7, 13, 11],
        "Conv(out: 22, kernel: 1, bn: true, act: Relu6), Conv(out: 22, kernel: 3, groups: 22, bn: true, act: Relu6), \
         Conv(out: 5, kernel: 1)",
    ),
    // The depthwise output may take the bytes of the 1x1's input, dead by its own step, and
    // channels enough for several tasks, each of which reads all of that input.
    (
        "expand_depthwise_reuse",
        [64, 24, 23],
        "Relu, Conv(out: 64, kernel: 1, act: Relu6), Conv(out: 64, kernel: 3, groups: 64, bn: true), Relu",
    ),
    (
        "expand_depthwise_s2",
        [5, 12, 37],
        "Conv(out: 13, kernel: 1, act: Relu), Conv(out: 13, kernel: 3, stride: 2, groups: 13, bn: true)",
    ),
    // The depthwise convolution's residual, computed before the 1x1 that the step is placed at.
    (
        "expand_depthwise_residual",
        [6, 9, 10],
        r#"Conv(name: "r", out: 12, kernel: 3), Conv(out: 5, kernel: 1), Conv(out: 12, kernel: 1),
           Conv(name: "d", out: 12, kernel: 3, groups: 12), Add(["d", "r"]), Relu"#,
    ),
    ("depthwise5_s2", [6, 15, 14], "Conv(out: 6, kernel: 5, stride: 2, groups: 6, act: Relu6)"),
    (
        // Rows wide enough for stride-2 windows deinterleaved from aligned vectors in the loop
        // over inner columns (AVX-512: the conv's output columns 16-63, the pool's 16-31).
        "stride2_wide",
        [2, 5, 151],
        "Conv(out: 2, kernel: 3, stride: 2, groups: 2, bias: true), MaxPool(kernel: 3, stride: 2, padding: 1)",
    ),
    ("depthwise_dilated", [5, 10, 10], "Conv(out: 5, kernel: 3, dilation: 2, groups: 5)"),
    (
        "depthwise_dilated_s2",
        [5, 13, 19],
        "Conv(out: 5, kernel: 3, stride: 2, dilation: 2, groups: 5, bias: true)",
    ),
    ("pools", [5, 9, 10], "AvgPool(kernel: 3, stride: 2, padding: 1), MaxPool(kernel: 2)"),
    (
        "windows_on_small_planes",
        [10, 7, 7],
        "Conv(out: 10, kernel: 3, groups: 10, act: Relu6), MaxPool(kernel: 3, stride: 3, padding: 1), \
         Conv(out: 10, kernel: 3, groups: 10, bias: true), Conv(out: 4, kernel: 3, act: Relu)",
    ),
    // Stride 1 reads the input planes in place: padding rows left out, edge vectors masked.
    (
        "windows_stride_one",
        [6, 9, 17],
        "MaxPool(kernel: 3, stride: 1, padding: 1), AvgPool(kernel: 3, stride: 1, padding: 1), \
         Conv(out: 6, kernel: 5, groups: 6, act: Relu), Conv(out: 6, kernel: 3, padding: 0, groups: 6, bias: true), \
         Conv(out: 6, kernel: 7, padding: 3, groups: 6)",
    ),
    (
        "windows_one_column",
        [4, 5, 1],
        "Conv(out: 4, kernel: 3, groups: 4, bias: true), MaxPool(kernel: 3, stride: 1, padding: 1)",
    ),
    ("linear", [7, 3, 2], "Linear(out: 33), Relu, Linear(out: 5, bias: false), Softmax"),
    ("global_avg_pool", [11, 7, 7], "Conv(out: 13, kernel: 1), GlobalAvgPool, Linear(out: 4)"),
    // A 1x1 convolution feeding only a pool feeding only a linear layer: one kernel, its tasks
    // whole output-channel tiles summing partial products of the linear layer.
    (
        "classifier_tail",
        [37, 5, 9],
        "Conv(out: 203, kernel: 1, bn: true, act: Relu6), GlobalAvgPool, Linear(out: 19), Relu",
    ),
    (
        "classifier_tail_tasks",
        [64, 14, 13],
        "Conv(out: 500, kernel: 1, act: Relu), GlobalAvgPool, Linear(out: 77, bias: false)",
    ),
    ("global_avg_pool_narrow", [5, 3, 1], "GlobalAvgPool"),
    ("global_avg_pool_whole_vectors", [3, 4, 4], "Relu, GlobalAvgPool"),
    // Channel-blocked from the first 1x1 (planes in, blocks out) through a residual block and
    // a stride-2 depthwise convolution into the classifier; 14x14 pixels in tiles of 14, 7x7
    // in three of 14 and one of 7.
    (
        "blocked",
        [16, 14, 14],
        r#"Conv(out: 32, kernel: 1, bn: true), Alias(name: "x"),
           Conv(out: 96, kernel: 1, bn: true, act: Relu6), Conv(out: 96, kernel: 3, groups: 96, bn: true, act: Relu6),
           Conv(name: "p", out: 32, kernel: 1, bn: true), Add(["x", "p"]),
           Conv(out: 64, kernel: 1, act: Relu6), Conv(out: 64, kernel: 3, stride: 2, groups: 64, act: Relu6),
           Conv(out: 48, kernel: 1), Relu, GlobalAvgPool, Linear(out: 10)"#,
    ),
    // Channel-blocked with 20 input channels in planes (a block and 4 left), 45 pixels (a tail
    // of 3), stride 2 to 3x5, and the output written back to planes.
    (
        "blocked_odd",
        [20, 5, 9],
        "Conv(out: 32, kernel: 1, act: Relu), Conv(out: 32, kernel: 3, groups: 32, bias: true), \
         Conv(out: 32, kernel: 3, stride: 2, groups: 32, act: Relu6), Conv(out: 48, kernel: 1, bias: true)",
    ),
    // An expansion over 900 pixels in blocks, fused with the stride-2 depthwise convolution
    // that brings them to 225 (MobileNet V2's features.4 from 56x56 to 28x28).
    (
        "blocked_wide_expansion",
        [24, 30, 30],
        "Conv(out: 48, kernel: 1, bn: true, act: Relu6), Conv(out: 48, kernel: 3, stride: 2, groups: 48, bn: true, act: Relu6), \
         Conv(out: 32, kernel: 1, bn: true)",
    ),
    // Planes of 512 bytes and more are padded to an odd number of cache lines: 17x19 floats.
    (
        "padded_planes",
        [6, 17, 19],
        r#"Conv(out: 10, kernel: 1, act: Relu), Alias(name: "e"), Conv(name: "d", out: 10, kernel: 3, groups: 10),
           Add(["e", "d"]), Conv(out: 7, kernel: 3, stride: 2), MaxPool(kernel: 2)"#,
    ),
];

/// Case `name` at batch 2: its graph, random weights and input, and `ir::eval`'s output.
fn case(
    name: &str,
    [c, h, w]: [usize; 3],
    body: &str,
) -> (ir::Graph, ir::Weights, ir::Tensor, Vec<ir::Tensor>) {
    let text = format!(
        r#"Network(name: "{name}", input: Image(channels: {c}, height: {h}, width: {w}), body: [{body}])"#
    );
    let graph = ir::from_ron_str(&text, "case.ron", &ir::BuildOptions { batch: 2, overrides: vec![] })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let weights = random_weights(&graph, 7);
    let input = random_input(&[2, c, h, w], 7);
    let expected = ir::eval::eval(&graph, &weights, std::slice::from_ref(&input)).unwrap();
    (graph, weights, input, expected)
}

#[test]
fn kernels_match_eval() {
    let host = codegen::Target::host();
    let avx2 = codegen::Target::named("x86_64-linux-gnu").unwrap();
    let targets: Vec<codegen::Target> =
        [Some(host), avx2.runs_here().then_some(avx2)].into_iter().flatten().collect();
    ir::testing::for_each_parallel(CASES, |&(name, shape, body)| {
        let (graph, weights, input, expected) = case(name, shape, body);
        for level in [Level::O0, Level::O2] {
            let opt = passes::optimize(&graph, &weights, level, None);
            for target in &targets {
                let mut model =
                    codegen::CompiledModel::compile_for(target, &opt.graph, &opt.weights, &opt.plan, 0)
                        .unwrap();
                for threads in [1, 3] {
                    model.set_threads(threads);
                    let out = ir::Tensor::new(&expected[0].shape, model.run(&input.data));
                    let err = out.relative_error(&expected[0]);
                    assert!(err < 1e-4, "{name} at {level:?} for {} on {threads} threads: {err}", target.cpu);
                }
            }
        }
    });
}

/// Convolutions with a choice of schedule, each with odd shapes.
const TUNABLE: &[(&str, [usize; 3], &str)] = &[
    ("pointwise", [13, 5, 7], "Conv(out: 29, kernel: 1, bias: true, act: Relu)"),
    ("grouped pointwise", [12, 7, 7], "Conv(out: 30, kernel: 1, groups: 3, bias: true, act: Relu)"),
    // 49 pixels: a one-pixel tail of every tile width but 32, computed a column at a time.
    (
        "pointwise 7x7 with a residual",
        [17, 7, 7],
        r#"Alias(name: "x"), Conv(name: "c", out: 17, kernel: 1, bn: true), Add(["x", "c"]), Relu"#,
    ),
    // The one-pixel tail summed in blocks of a vector's steps of k, and the steps left over.
    ("pointwise 7x7 over 40 channels", [40, 7, 7], "Conv(out: 23, kernel: 1, bias: true)"),
    // Fused with the depthwise convolution it feeds (kernels::expand_window).
    (
        "pointwise into a depthwise convolution",
        [13, 9, 10],
        "Conv(out: 21, kernel: 1, act: Relu6), Conv(out: 21, kernel: 3, groups: 21, bn: true)",
    ),
    ("winograd", [9, 7, 11], "Conv(out: 19, kernel: 3, bias: true, act: Relu)"),
    ("shifted", [7, 9, 21], "Conv(out: 9, kernel: 5, padding: 2)"),
    // Rows of 33 outputs: whole vectors of every other input column, then a masked rest.
    ("im2col", [9, 14, 66], "Conv(out: 11, kernel: 3, stride: 2, padding: 1)"),
];

#[test]
fn every_candidate_schedule_and_sweep_matches_eval() {
    let target = codegen::Target::host();
    ir::testing::for_each_parallel(TUNABLE, |&(name, shape, body)| {
        let (graph, weights, input, expected) = case(name, shape, body);
        let opt = passes::optimize(&graph, &weights, Level::O2, None);
        let tunable = codegen::tune::tunable(&opt.graph, &target);
        let [(key, id)] = &tunable[..] else { panic!("{name}: one tunable convolution, got {tunable:?}") };
        let mut candidates = codegen::schedule::Schedule::candidates(&opt.graph, *id, target.isa(), 1);
        assert!(candidates.len() >= 3, "{name}: {candidates:?}");
        // A cache file may name any sweep for any convolution: each must still compute it.
        use codegen::schedule::Sweep;
        let sweeps = [
            Sweep::Channels,
            Sweep::Streamed,
            Sweep::Panel,
            Sweep::Pixels,
            Sweep::Packed,
            Sweep::PackedPixels,
            Sweep::SplitK,
        ];
        for sweep in sweeps {
            let named = codegen::schedule::Schedule { sweep, ..candidates[0] };
            if !candidates.contains(&named) {
                candidates.push(named);
            }
        }
        for schedule in candidates {
            let schedules = codegen::schedule::Schedules::only(key.clone(), schedule);
            let mut model = codegen::CompiledModel::compile_tuned(
                &target,
                &opt.graph,
                &opt.weights,
                &opt.plan,
                0,
                &schedules,
            )
            .unwrap();
            model.set_threads(2);
            // A second run on a new input: a run must leave the step's state (split-K's chunk
            // counters) as it found it, or it writes nothing and leaves the last output.
            let again = random_input(&input.shape, 8);
            let expected_again = ir::eval::eval(&graph, &weights, std::slice::from_ref(&again)).unwrap();
            for (run, (x, y)) in
                [(&input, &expected[0]), (&again, &expected_again[0])].into_iter().enumerate()
            {
                let out = ir::Tensor::new(&y.shape, model.run(&x.data));
                let err = out.relative_error(y);
                assert!(err < 1e-4, "{name} with {schedule:?}, run {}: {err}", run + 1);
            }
        }
    });
}

/// A convolution whose choice on several threads differs from its one-thread choice: its step
/// holds both kernels and takes one by the pool's thread count, and each computes it.
#[test]
fn thread_count_variants_match_eval() {
    use codegen::schedule::{Schedule, Schedules, Sweep};
    let body = "Conv(out: 29, kernel: 1, bias: true, act: Relu)";
    let (graph, weights, input, _) = case("variants", [13, 14, 14], body);
    let opt = passes::optimize(&graph, &weights, Level::O2, None);
    let target = codegen::Target::host();
    let tunable = codegen::tune::tunable(&opt.graph, &target);
    let [(key, _)] = &tunable[..] else { panic!("one tunable convolution, got {tunable:?}") };
    let serial = Schedule { tile: [2, 4], winograd: true, sweep: Sweep::Packed };
    let parallel = Schedule { tile: [4, 3], winograd: true, sweep: Sweep::Panel };
    let schedules = |on_several: Schedule| {
        let mut s = Schedules::default();
        s.insert(key.clone(), serial);
        s.insert_parallel(key.clone(), on_several);
        s
    };
    let dispatches = |s: &Schedules| {
        let lowered = codegen::lower(&opt.graph, &opt.weights, &opt.plan, target.isa(), s, "v").unwrap();
        lowered.ir.matches("call i32 @archc_threads()").count()
    };
    assert_eq!(dispatches(&schedules(serial)), 0, "the same choice: one kernel");
    assert_eq!(dispatches(&schedules(parallel)), 1, "different choices: both, chosen at run time");
    let mut model = codegen::CompiledModel::compile_tuned(
        &target,
        &opt.graph,
        &opt.weights,
        &opt.plan,
        0,
        &schedules(parallel),
    )
    .unwrap();
    // A new input at each run: a variant that wrote nothing would leave the last run's output.
    for (seed, threads) in [3, 1, 3, 1].into_iter().enumerate() {
        let input = random_input(&input.shape, seed as u64 + 11);
        let expected = ir::eval::eval(&graph, &weights, std::slice::from_ref(&input)).unwrap();
        model.set_threads(threads);
        let out = ir::Tensor::new(&expected[0].shape, model.run(&input.data));
        let err = out.relative_error(&expected[0]);
        assert!(err < 1e-4, "on {threads} threads: {err}");
    }
}

/// Window steps over planes of 56 rows or more split each plane into bands of rows on several
/// threads (a fused expansion computing the rows its band's windows read): every band's edge
/// rows, at both strides and an odd height, equal the interpreter's.
#[test]
fn banded_window_steps_match_eval_on_any_thread_count() {
    let body = "MaxPool(kernel: 3, stride: 1, padding: 1),
        Conv(out: 13, kernel: 1, act: Relu6), Conv(out: 13, kernel: 3, padding: 1, groups: 13),
        Conv(out: 13, kernel: 5, padding: 2, groups: 13, act: Relu),
        Conv(out: 11, kernel: 1), Conv(out: 11, kernel: 3, stride: 2, padding: 1, groups: 11, act: Relu6),
        Conv(out: 9, kernel: 1)";
    let (graph, weights, _, _) = case("banded", [6, 59, 37], body);
    let opt = passes::optimize(&graph, &weights, Level::O2, None);
    let target = codegen::Target::host();
    let s = codegen::schedule::Schedules::default();
    let lowered = codegen::lower(&opt.graph, &opt.weights, &opt.plan, target.isa(), &s, "b").unwrap();
    // The pool, the fused 3x3, the 5x5 and the fused stride-2 (59 rows in, 30 out): banded.
    assert_eq!(lowered.ir.matches("call i32 @archc_threads()").count(), 4, "a variant for each window step");
    let mut model =
        codegen::CompiledModel::compile_tuned(&target, &opt.graph, &opt.weights, &opt.plan, 0, &s).unwrap();
    for (seed, threads) in [2, 1, 3, 2].into_iter().enumerate() {
        let input = random_input(&[2, 6, 59, 37], seed as u64 + 5);
        let expected = ir::eval::eval(&graph, &weights, std::slice::from_ref(&input)).unwrap();
        model.set_threads(threads);
        let out = ir::Tensor::new(&expected[0].shape, model.run(&input.data));
        let err = out.relative_error(&expected[0]);
        assert!(err < 1e-4, "on {threads} threads: {err}");
    }
}

/// MobileNet V2's blocks at 28x28 and below run channel-blocked (`nChw16c`) on AVX-512: 1x1
/// tiles reading planes or blocks, depthwise windows on blocks (fused after an expansion), a
/// classifier reading blocks, planes written by scatter where a reader needs them. Whatever
/// the thread count, they equal `ir::eval`.
#[test]
fn channel_blocked_steps_match_eval_on_any_thread_count() {
    let target = codegen::Target::host();
    if target.isa().lanes != 16 {
        return;
    }
    let s = codegen::schedule::Schedules::default();
    // The steps of each case, and whether a step writes planes from blocks.
    let expected: [(&str, &[&str], bool); 3] = [
        (
            "blocked",
            &[
                "conv",
                "conv+relu6+conv+relu6",
                "conv+add",
                "conv+relu6+conv+relu6",
                "conv+relu+global_avg_pool+linear",
                "copy",
            ],
            false,
        ),
        ("blocked_odd", &["conv+relu+conv", "conv+relu6", "conv", "copy"], true),
        ("blocked_wide_expansion", &["conv+relu6+conv+relu6", "conv", "copy"], true),
    ];
    for (name, steps, scatters) in expected {
        let &(_, shape, body) = CASES.iter().find(|case| case.0 == name).unwrap();
        let (graph, weights, _, _) = case(name, shape, body);
        let opt = passes::optimize(&graph, &weights, Level::O2, None);
        let lowered = codegen::lower(&opt.graph, &opt.weights, &opt.plan, target.isa(), &s, "b").unwrap();
        let ops: Vec<&str> = lowered.steps.iter().map(|s| s.op.as_str()).collect();
        assert_eq!(ops, steps, "{name}");
        assert!(lowered.ir.contains("@b_blocked_tile"), "{name}");
        assert_eq!(lowered.ir.contains("call void @llvm.masked.scatter"), scatters, "{name}");
        let mut model =
            codegen::CompiledModel::compile_tuned(&target, &opt.graph, &opt.weights, &opt.plan, 0, &s)
                .unwrap();
        for (seed, threads) in [1, 2, 3, 1].into_iter().enumerate() {
            let input = random_input(&[2, shape[0], shape[1], shape[2]], seed as u64 + 11);
            let expected = ir::eval::eval(&graph, &weights, std::slice::from_ref(&input)).unwrap();
            model.set_threads(threads);
            let out = ir::Tensor::new(&expected[0].shape, model.run(&input.data));
            let err = out.relative_error(&expected[0]);
            assert!(err < 1e-4, "{name} on {threads} threads: {err}");
        }
    }
}

/// A 1x1 convolution read only by a depthwise convolution shares its step; one whose output
/// another node also reads keeps its own.
#[test]
fn a_pointwise_convolution_shares_its_step_with_the_depthwise_convolution_alone_reading_it() {
    let steps = |body: &str| {
        let (graph, weights, _, _) = case("fused", [8, 9, 10], body);
        let opt = passes::optimize(&graph, &weights, Level::O2, None);
        let target = codegen::Target::host();
        let s = codegen::schedule::Schedules::default();
        let lowered = codegen::lower(&opt.graph, &opt.weights, &opt.plan, target.isa(), &s, "f").unwrap();
        lowered.steps.iter().map(|s| s.op.clone()).collect::<Vec<_>>()
    };
    let alone =
        steps("Conv(out: 16, kernel: 1, act: Relu6), Conv(out: 16, kernel: 3, groups: 16, act: Relu6)");
    assert!(alone.contains(&"conv+relu6+conv+relu6".to_string()), "{alone:?}");
    let residual = steps(
        r#"Conv(name: "r", out: 12, kernel: 3), Conv(out: 5, kernel: 1), Conv(out: 12, kernel: 1),
           Conv(name: "d", out: 12, kernel: 3, groups: 12), Add(["d", "r"]), Relu"#,
    );
    assert!(residual.contains(&"conv+conv+add+relu".to_string()), "{residual:?}");
    let same_width = steps("Conv(out: 8, kernel: 1), Conv(out: 8, kernel: 3, groups: 8)");
    assert_eq!(same_width, ["conv", "conv", "copy"], "a 1x1 that does not expand keeps its step");
    let shared = steps(
        r#"Conv(out: 16, kernel: 1), Alias(name: "e"), Conv(name: "d", out: 16, kernel: 3, groups: 16), Add(["e", "d"])"#,
    );
    assert!(!shared.iter().any(|op| op.matches("conv").count() > 1), "{shared:?}");
}

/// More threads than the runtime has home ranges (16), on steps of dozens of tasks: threads
/// share home ranges, and every task still runs once.
#[test]
fn more_threads_than_home_ranges() {
    let body = "Conv(out: 128, kernel: 1, act: Relu), Conv(out: 128, kernel: 3, groups: 128, bn: true)";
    let (graph, weights, input, expected) = case("many_tasks", [128, 48, 48], body);
    let opt = passes::optimize(&graph, &weights, Level::O2, None);
    let mut model = codegen::CompiledModel::compile(&opt.graph, &opt.weights, &opt.plan, 0).unwrap();
    model.set_threads(21);
    for _ in 0..3 {
        let out = ir::Tensor::new(&expected[0].shape, model.run(&input.data));
        let err = out.relative_error(&expected[0]);
        assert!(err < 1e-4, "on 21 threads: {err}");
    }
}

/// Max pooling ignores NaN inputs, as `ir::eval` does (`f32::max`): a window's maximum is
/// that of its numbers, and -inf where it holds none.
#[test]
fn max_pool_ignores_nan() {
    let (graph, weights, mut input, _) =
        case("max_nan", [3, 9, 11], "MaxPool(kernel: 3, stride: 2, padding: 1)");
    for i in (0..input.data.len()).step_by(5) {
        input.data[i] = f32::NAN;
    }
    let expected = ir::eval::eval(&graph, &weights, std::slice::from_ref(&input)).unwrap();
    assert!(expected[0].data.iter().all(|v| !v.is_nan()), "the reference ignores NaN");
    let opt = passes::optimize(&graph, &weights, Level::O2, None);
    let mut model = codegen::CompiledModel::compile(&opt.graph, &opt.weights, &opt.plan, 0).unwrap();
    assert_eq!(model.run(&input.data), expected[0].data);
}
