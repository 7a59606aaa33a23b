//! archc's compiled 1x1 convolutions beside a general matrix product on the same data: for
//! each of MobileNet V2's 1x1 shapes from 112x112 down to 7x7, the convolution compiled as a
//! one-layer network (one thread; by the schedules of the cache `ARCHC_SCHEDULES` names, as
//! `archc tune` measured them, else by archc's defaults), its own step timed without the
//! network's copies in and out of the arena, and the `gemm` crate's single-threaded sgemm
//! computing `Y = W X` over the same NCHW planes, timed by criterion in one run. Both outputs
//! are checked against each other first. After the groups, a table of medians and archc / gemm
//! ratios (from criterion's estimates).
//!
//!     cargo bench -p codegen --bench pointwise            # all shapes, default schedules
//!     cargo bench -p codegen --bench pointwise -- 14x14   # the groups whose name matches
//!     ARCHC_SCHEDULES=~/.cache/archc/schedules.json cargo bench -p codegen --bench pointwise

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use codegen::schedule::{Cache, DEFAULTS, Schedules};
use criterion::Criterion;
use ir::testing::{random_input, random_weights};

/// `(input channels, output channels, plane side)`: MobileNet V2's projections and expansions.
const SHAPES: &[(usize, usize, usize)] = &[
    (32, 16, 112),
    (16, 96, 112),
    (144, 24, 56),
    (192, 32, 28),
    (64, 384, 14),
    (576, 96, 14),
    (960, 160, 7),
    (320, 1280, 7),
];

/// One shape's product, ready to run both ways.
struct Product {
    name: String,
    model: codegen::CompiledModel,
    /// `[k][p]`: the input planes.
    x: Vec<f32>,
    /// `[m][k]`: the convolution's weights.
    w: Vec<f32>,
    m: usize,
    k: usize,
    p: usize,
}

impl Product {
    fn new(&(k, m, side): &(usize, usize, usize), schedules: &Schedules) -> Product {
        // No character that criterion replaces in its folder names (`/`, `>`, ...).
        let name = format!("{k} to {m} at {side}x{side}");
        let text = format!(
            r#"Network(name: "pointwise", input: Image(channels: {k}, height: {side}, width: {side}),
               body: [Conv(out: {m}, kernel: 1)])"#
        );
        let graph =
            ir::from_ron_str(&text, "pointwise.ron", &ir::BuildOptions { batch: 1, overrides: vec![] })
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        let weights = random_weights(&graph, 1);
        let opt = passes::optimize(&graph, &weights, passes::Level::O2, None);
        let host = codegen::Target::host();
        let model =
            codegen::CompiledModel::compile_tuned(&host, &opt.graph, &opt.weights, &opt.plan, 3, schedules)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        let conv = graph.node_ids().map(|id| graph.node(id)).find(|node| matches!(node.op, ir::Op::Conv(_)));
        let w = weights.param(conv.expect("a convolution"), "weight").data.clone();
        let p = side * side;
        Product { name, model, x: random_input(&[1, k, side, side], 1).data, w, m, k, p }
    }

    /// The time of the compiled network's convolution step in one run: its copies in and out
    /// of the arena, which a matrix product on the caller's buffers does not make, left out.
    fn archc(&mut self, y: &mut [f32]) -> Duration {
        let times = self.model.run_profiled(&self.x, y);
        self.model.steps().iter().zip(times).filter(|(step, _)| step.macs > 0).map(|(_, t)| t).sum()
    }

    /// `Y = W X` by the `gemm` crate, row-major, one thread.
    fn gemm(&self, y: &mut [f32]) {
        let (m, k, p) = (self.m, self.k, self.p);
        // SAFETY: `y` is m x p, `w` m x k and `x` k x p, each row-major and contiguous.
        unsafe {
            gemm::gemm(
                m,
                p,
                k,
                y.as_mut_ptr(),
                1,
                p as isize,
                false,
                self.w.as_ptr(),
                1,
                k as isize,
                self.x.as_ptr(),
                1,
                p as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }
}

/// Where criterion writes its estimates: `CRITERION_HOME`, else the workspace's target folder.
fn criterion_home() -> PathBuf {
    std::env::var_os("CRITERION_HOME").map(PathBuf::from).unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
        target.join("criterion")
    })
}

/// The median (ns) criterion estimated for `function` of `group` in this run (its estimates
/// written since `started`), if it ran: a filtered run leaves earlier runs' files in place.
fn median_ns(home: &Path, group: &str, function: &str, started: SystemTime) -> Option<f64> {
    let path = home.join(group).join(function).join("new/estimates.json");
    if std::fs::metadata(&path).and_then(|m| m.modified()).ok()? < started {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    json["median"]["point_estimate"].as_f64()
}

// A benchmark's table is its output.
#[allow(clippy::print_stdout)]
fn main() {
    let started = SystemTime::now();
    let home = criterion_home();
    let mut criterion = Criterion::default().output_directory(&home).configure_from_args();
    let (schedules, source) = match std::env::var_os("ARCHC_SCHEDULES") {
        Some(path) => {
            let cache = Cache::load(Path::new(&path)).unwrap_or_else(|e| panic!("ARCHC_SCHEDULES: {e}"));
            let schedules = cache.schedules_for(&codegen::Target::host());
            let source = format!("{} schedules of {}", schedules.len(), Path::new(&path).display());
            (schedules, source)
        }
        None => (DEFAULTS.clone(), "archc's default schedules".to_string()),
    };
    let mut products: Vec<Product> = SHAPES.iter().map(|shape| Product::new(shape, &schedules)).collect();
    for product in &mut products {
        let shape = [product.m, product.p];
        let mut expected = vec![0.0; product.m * product.p];
        product.gemm(&mut expected);
        let got = ir::Tensor::new(&shape, product.model.run(&product.x));
        let error = got.relative_error(&ir::Tensor::new(&shape, expected));
        assert!(error < 1e-4, "{}: archc and gemm differ by {error} (relative)", product.name);

        let mut group = criterion.benchmark_group(&product.name);
        let mut y = vec![0.0; product.m * product.p];
        group.bench_function("archc", |b| {
            b.iter_custom(|runs| (0..runs).map(|_| product.archc(&mut y)).sum())
        });
        group.bench_function("gemm", |b| b.iter(|| product.gemm(&mut y)));
        group.finish();
    }
    criterion.final_summary();

    let rows: Vec<_> = products
        .iter()
        .filter_map(|p| {
            let archc = median_ns(&home, &p.name, "archc", started)?;
            let gemm = median_ns(&home, &p.name, "gemm", started)?;
            Some((p, archc, gemm))
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    println!("\narchc by {source}, one thread; medians:\n");
    println!("| 1x1 convolution | archc µs | gemm µs | archc GFLOP/s | archc / gemm |");
    println!("|---|---|---|---|---|");
    for (p, archc, gemm) in rows {
        let gflops = 2.0 * (p.m * p.k * p.p) as f64 / archc;
        println!(
            "| {} | {:.1} | {:.1} | {gflops:.0} | {:.2} |",
            p.name,
            archc / 1e3,
            gemm / 1e3,
            archc / gemm
        );
    }
}
