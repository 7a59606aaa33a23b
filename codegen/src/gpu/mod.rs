//! NVIDIA GPUs: a network lowers to a PTX module of one kernel per fused group (conv or
//! linear layer with its epilogues, pool, element-wise op, channel copy) and a launch plan.
//! The same kernel bodies lower for the host as an emulated grid ([`grid`]), which is how
//! their logic is tested on machines without a GPU. Running the PTX is the `cuda` crate's.

mod grid;
mod kernels;

use std::time::Instant;

use ir::{Graph, Value, Weights};
use passes::plan::{Placement, Plan};

use crate::emit::{self, Function};
use crate::lower::{Lowering, STEP_PARAMS, StepInfo, input_values, shapes};
use crate::{CompiledModel, Error, JIT_SYMBOL, Target};
use grid::{Block, Dialect, Grid};

/// The GPU architectures PTX is emitted for.
pub const ARCHS: [&str; 2] = ["sm_80", "sm_90"];

/// Threads per block of every kernel.
const THREADS: usize = 256;

/// The symbol prefix of PTX kernels.
const PTX_SYMBOL: &str = "archc";

/// Compiles `graph` (with `weights`, placed by `plan`) to PTX for `arch` (one of [`ARCHS`]):
/// the module, its launch plan and the weights blob its kernels read.
pub fn compile_ptx(graph: &Graph, weights: &Weights, plan: &Plan, arch: &str) -> Result<cuda::Files, Error> {
    if !ARCHS.contains(&arch) {
        return Err(Error::Unsupported(format!("GPU architecture `{arch}`; known: {}", ARCHS.join(", "))));
    }
    let isa = Target::host().isa();
    let mut k = Kernels::new(Lowering::new(graph, weights, plan, isa, PTX_SYMBOL), Dialect::Device);
    k.network()?;
    let Kernels { l, launches, .. } = k;
    let (globals, functions, blob) = l.into_parts();
    let mut ir = String::new();
    ir.push_str(&emit::intrinsics(1));
    ir.push_str(NVVM_DECLARATIONS);
    ir.push_str(&globals);
    ir.push_str(&functions);
    let target = Target { triple: "nvptx64-nvidia-cuda".into(), cpu: arch.into(), features: String::new() };
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("network.ptx");
    crate::build::write_ir(&ir, &target, 3, None, crate::build::ModuleFile::Assembly, &path)?;
    let ptx = std::fs::read_to_string(&path)?;
    let plan = cuda::LaunchPlan {
        network: graph.name().to_string(),
        arch: arch.to_string(),
        parameters: vec![
            cuda::Buffer::Input,
            cuda::Buffer::Output,
            cuda::Buffer::Weights,
            cuda::Buffer::Arena,
        ],
        arena_bytes: plan.peak_bytes.next_multiple_of(64) as u64,
        weight_floats: blob.len() as u64,
        inputs: shapes(graph, &input_values(graph)),
        outputs: shapes(graph, graph.outputs()),
        kernels: launches,
    };
    Ok(cuda::Files { ptx, plan, weights: blob })
}

/// Compiles the GPU kernels of `graph` for this CPU, each grid run block by block on the
/// thread pool, phase by phase within a block: the GPU code's logic, testable anywhere.
pub fn compile_emulated(
    graph: &Graph,
    weights: &Weights,
    plan: &Plan,
    llvm_level: u8,
) -> Result<CompiledModel, Error> {
    let start = Instant::now();
    let target = Target::host();
    let mut k =
        Kernels::new(Lowering::new(graph, weights, plan, target.isa(), JIT_SYMBOL), Dialect::Emulated);
    k.network()?;
    let lowered = k.l.finish();
    CompiledModel::load(lowered, &target, llvm_level, start)
}

/// What kernels call besides LLVM's target-independent intrinsics.
const NVVM_DECLARATIONS: &str = "declare i32 @llvm.nvvm.read.ptx.sreg.tid.x()
declare i32 @llvm.nvvm.read.ptx.sreg.ctaid.x()
declare void @llvm.nvvm.barrier0()
declare float @llvm.nvvm.ex2.approx.f(float)

";

/// Writes a network's kernels in one dialect.
struct Kernels<'a> {
    l: Lowering<'a>,
    dialect: Dialect,
    launches: Vec<cuda::Launch>,
    /// The value the next launches write, whose buffer's arena offset the plan records.
    writes: Option<Value>,
}

impl<'a> Kernels<'a> {
    fn new(l: Lowering<'a>, dialect: Dialect) -> Self {
        Kernels { l, dialect, launches: Vec::new(), writes: None }
    }

    /// Every kernel of the network, in schedule order: copy in, the nodes, copy out.
    fn network(&mut self) -> Result<(), Error> {
        let graph = self.l.graph;
        self.external(&input_values(graph), "%in", true);
        for group in crate::lower::kernel_groups(graph, self.l.plan, None) {
            self.writes = Some(group.chain.output(group.id));
            self.node(group.info, group.id, &group.chain)?;
        }
        self.external(graph.outputs(), "%out", false);
        Ok(())
    }

    /// Emits one kernel of launch shape `grid`; `body` writes its block-level code.
    fn launch(&mut self, info: StepInfo, grid: Grid, body: impl FnOnce(&mut Lowering<'a>, &mut Block<'_>)) {
        let entry = format!("{PTX_SYMBOL}_k{}", self.launches.len());
        self.launches.push(cuda::Launch {
            entry: entry.clone(),
            node: info.name.clone(),
            op: info.op.clone(),
            blocks: u32::try_from(grid.blocks).expect("grids fit CUDA's 2^31 - 1 blocks"),
            threads: grid.threads as u32,
            shared_bytes: (grid.shared_floats * 4) as u32,
            macs: info.macs,
            arena_offset: self.writes.map(|v| match &self.l.plan.placements[&v] {
                Placement::Whole(b) => self.l.plan.buffers[*b].offset as u64,
                Placement::Planes(_) => unreachable!("kernels write whole buffers; views launch nothing"),
            }),
        });
        match self.dialect {
            Dialect::Device => {
                let mut f = Function::for_nvptx();
                let id = f.let_("bid", "call i32 @llvm.nvvm.read.ptx.sreg.ctaid.x()");
                let id = f.let_("bid", format!("zext i32 {id} to i64"));
                let thread = f.let_("tid", "call i32 @llvm.nvvm.read.ptx.sreg.tid.x()");
                let thread = f.let_("tid", format!("zext i32 {thread} to i64"));
                let shared = if grid.shared_floats > 0 {
                    let global = format!("@{entry}_shared");
                    self.l.globals.push_str(&format!(
                        "{global} = internal addrspace(3) global [{} x float] undef, align 16\n",
                        grid.shared_floats
                    ));
                    f.let_("shared", format!("addrspacecast ptr addrspace(3) {global} to ptr"))
                } else {
                    "null".to_string()
                };
                body(
                    &mut self.l,
                    &mut Block::new(&mut f, Dialect::Device, grid.threads, &id, &thread, &shared),
                );
                self.l.define(&f.finish(&format!("define ptx_kernel void @{entry}{STEP_PARAMS}")));
            }
            Dialect::Emulated => self.l.step(info, |l, f| {
                l.parallel(f, grid.blocks, |l, task| {
                    let shared = task.stack_floats(grid.shared_floats);
                    body(l, &mut Block::new(task, Dialect::Emulated, grid.threads, "%t", "", &shared));
                })
            }),
        }
    }

    /// A kernel of one thread per point of the row-major index space `dims`; `body` gets the
    /// point's index along each axis.
    fn each(
        &mut self,
        info: StepInfo,
        dims: &[usize],
        body: impl FnOnce(&mut Lowering<'a>, &mut Function, &[String]),
    ) {
        let total: usize = dims.iter().product();
        let grid = Grid { blocks: total.div_ceil(THREADS).max(1), threads: THREADS, shared_floats: 0 };
        let dims = dims.to_vec();
        self.launch(info, grid, |l, b| {
            let id = b.id.clone();
            b.threads(|f, t| {
                let first = f.int("mul", &id, THREADS);
                let flat = f.int("add", &first, t);
                let inside = f.let_("in", format!("icmp ult i64 {flat}, {total}"));
                f.when(&inside, |f| {
                    let mut index = vec![String::new(); dims.len()];
                    let mut rest = flat;
                    for (axis, &d) in dims.iter().enumerate().rev() {
                        if axis == 0 {
                            index[0] = rest.clone();
                        } else {
                            index[axis] = f.int("urem", &rest, d);
                            rest = f.int("udiv", &rest, d);
                        }
                    }
                    body(l, f, &index)
                });
            });
        });
    }

    /// Copies between the caller's contiguous arrays at `ptr` and the arena: one kernel per
    /// value.
    fn external(&mut self, values: &[Value], ptr: &str, into_arena: bool) {
        let graph = self.l.graph;
        let mut start = 0;
        for &v in values {
            self.writes = into_arena.then_some(v);
            let shape = graph.shape(v);
            let (c, inner) = crate::lower::planes(shape);
            let name = if into_arena { "input" } else { "output" };
            let info = StepInfo { name: name.into(), op: "copy".into(), macs: 0 };
            self.each(info, &[shape.batch(), c, inner], |l, f, i| {
                let plane = l.plane(f, v, &i[1], &i[0]);
                let item = f.int("mul", &i[0], c);
                let row = f.int("add", &item, &i[1]);
                let within = f.int("mul", &row, inner);
                let at = f.int("add", &within, start);
                let flat = f.int("add", &at, &i[2]);
                if into_arena {
                    let x = f.load(ptr, &flat);
                    f.store(&x, &plane, &i[2]);
                } else {
                    let x = f.load(&plane, &i[2]);
                    f.store(&x, ptr, &flat);
                }
            });
            start += shape.numel();
        }
    }
}
