//! How each convolution is computed where there is a choice (the GEMM micro-tile, Winograd or
//! not), the key a choice is recorded under (the convolution's shape), and the cache file
//! `archc tune` fills with measured choices and `compile` and `bench` read.

use std::collections::BTreeMap;
use std::path::Path;

use ir::{Graph, NodeId, Op, Value};
use serde::{Deserialize, Serialize};

use crate::{Error, Isa, Target};

/// The choices of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// The micro-tile: output channels by vectors of pixels held in registers.
    pub tile: [usize; 2],
    /// Winograd F(2x2, 3x3) where the convolution allows it (3x3, stride 1), else the direct
    /// product.
    pub winograd: bool,
    /// The order of a product's tiles.
    #[serde(default)]
    pub sweep: Sweep,
}

/// The order in which a task walks a product's micro-tiles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sweep {
    /// Every output-channel tile under one pixel tile: the input pixels stay in L1 while the
    /// weights stream (from L2 when they fit there).
    #[default]
    Channels,
    /// As `Channels`, the first output-channel tile under each pixel tile prefetching the next
    /// pixel tile of every input row into L1, for inputs too large for L2: a line from each
    /// of dozens of planes at once is more streams than the hardware prefetcher follows.
    /// MobileNet V2's 32 to 16 channel 1x1 conv at 112x112 (1.6 MB of input): 0.20-0.25 ->
    /// 0.16-0.17 ms in the network.
    Streamed,
    /// As `Channels`, each pixel tile's input first copied into a panel (one tile of every
    /// input row, consecutive): one cache line per row where the planes' rows straddle two,
    /// in an order the prefetcher follows.
    Panel,
    /// Every pixel tile under one output-channel tile: each weight is read once, for layers
    /// whose weights outgrow L2 while their input fits (ShuffleNet's last 1x1 conv: 8 MB of
    /// weights against 191 KB of 7x7 input).
    Pixels,
    /// As `Panel`, with every pixel tile's panel packed before the product (in parallel, into
    /// arena scratch) rather than by each task: a product of few pixels holds few tiles per
    /// task, each of which would pack its panel again. Measured faster than the other sweeps
    /// on small planes, most on 7x7: ShuffleNet V2 2.0x's last 1x1 convolution (976 to 2048
    /// channels) 3.1 against 5.2 ms.
    Packed,
    /// Packed panels, swept as `Pixels`: every packed pixel tile under one output-channel
    /// tile, so that each weight is read once. For small planes whose weights outgrow L2: the
    /// channel order reads them once per pixel tile, from memory once the rest of the network
    /// has evicted them.
    PackedPixels,
    /// For several threads: the reduction split in two halves, each task computing one half's
    /// partial product into scratch, then a second pass adding the two (see
    /// `kernels::split_k`). The halves fall to the two threads' home ranges, so that each
    /// reads the input channels it wrote itself (a fused expansion and depthwise step splits
    /// channels the same way), and what crosses between the cores is a partial sum, 1/6 of
    /// a MobileNet V2 projection's input. Others take it as `Channels`.
    SplitK,
}

/// Bytes of operand that stay in L2 (half of the smallest L2 of the CPUs archc targets).
const L2_BYTES: usize = 256 << 10;

/// Input bytes past which a 1x1 convolution streams its input rows ([`Sweep::Streamed`]):
/// four times what stays in L2.
const STREAMED_INPUT_BYTES: usize = 4 * L2_BYTES;

/// Multiply-adds of the smallest 1x1 convolution whose reduction is split on several threads
/// by default ([`Schedule::default_parallel`]): below, the second pass over the partial sums
/// costs more than the cross-core reads it saves. ShuffleNet V2 0.5x (its 48 and 96-channel
/// layers, 0.45M multiply-adds each) on two threads, paired: 1.065 with them split.
const SPLIT_MACS: usize = 1 << 20;

/// Pixels of the planes whose 1x1 convolutions pack their panels first ([`Sweep::Packed`]).
const SMALL_PLANE: usize = 16 * 16;

impl Schedule {
    /// The target's default tile, Winograd where allowed, channel sweep.
    pub fn basic(isa: Isa) -> Schedule {
        Schedule { tile: [isa.tile_rows, isa.tile_vectors], winograd: true, sweep: Sweep::Channels }
    }

    /// What convolution `id` of `graph` takes without a measurement: [`Schedule::basic`]; for
    /// a 1x1 convolution, packed panels on small planes (up to 16x16: 1.3-1.9x on 7x7 layers,
    /// 1.0-1.15x on 14x14), else a pixel sweep where its weights outgrow L2 while its input
    /// fits, else streamed input rows where the input is four times what stays in L2 (the
    /// tuner's choice on MobileNet V2's 112x112 and 56x56 projections, 1.15-1.3x), else panels
    /// (measured faster on 10 of 11 ShuffleNet and MobileNet 1x1 layers, 3-20%, on an AVX2
    /// machine). Untuned MobileNet V2 with streamed defaults: 0.978 / 0.981 (one / two
    /// threads, paired). With AVX-512 the rest stream too: on an AVX-512 Xeon the tuner took
    /// panels for 1 of 20 such layers of MobileNet V2 and ShuffleNet V2, and the 19 others
    /// timed each way (28x28 and 56x56, 24 to 244 channels) took 8.3% less in all streamed
    /// than paneled on one thread and 4.9% less on two, within 1% of the best sweep of each,
    /// none of them slower by more than 3%. Other
    /// convolutions but Winograd's read im2col panels (see `kernels::im2col`), swept so that
    /// the smaller operand is the one read again: the weights for each pixel tile where there
    /// are no more output channels than pixels, else the panels for each channel tile.
    pub fn default_for(graph: &Graph, id: NodeId, isa: Isa) -> Schedule {
        let basic = Schedule::basic(isa);
        let Op::Conv(conv) = &graph.node(id).op else { return basic };
        let x = graph.shape(graph.operands(id)[0]);
        let (k, pixels) = (x.channels() / conv.groups, x.item_numel() / x.channels());
        let weights = conv.out_channels * k * 4;
        let pointwise = crate::kernels::gemm::pointwise(conv);
        let weights_outgrow_l2 = weights > L2_BYTES && k * pixels * 4 <= L2_BYTES;
        if !pointwise && !crate::kernels::winograd::suits(conv, x.channels()) {
            let out = graph.shape(Value { node: id, port: 0 });
            let out_pixels = out.item_numel() / out.channels();
            let sweep = if conv.out_channels <= out_pixels { Sweep::Packed } else { Sweep::PackedPixels };
            return Schedule { sweep, ..basic };
        }
        match pointwise {
            true if pixels <= SMALL_PLANE && weights_outgrow_l2 => {
                Schedule { sweep: Sweep::PackedPixels, ..basic }
            }
            true if pixels <= SMALL_PLANE => Schedule { sweep: Sweep::Packed, ..basic },
            true if weights_outgrow_l2 => Schedule { sweep: Sweep::Pixels, ..basic },
            true if k * pixels * 4 > STREAMED_INPUT_BYTES || isa.lanes >= 16 => {
                Schedule { sweep: Sweep::Streamed, ..basic }
            }
            true => Schedule { sweep: Sweep::Panel, ..basic },
            false => basic,
        }
    }

    /// What convolution `id` of `graph` takes without a measurement when its step runs on
    /// several threads: the reduction split between them ([`Sweep::SplitK`]) for a 1x1
    /// convolution of [`SPLIT_MACS`] or more in a step of its own that either projects (more
    /// input channels than output) on a plane up to 28x28 (MobileNet V2's projections), or
    /// whose weights fit L2 on a plane up to 16x16 (ShuffleNet V2's 14x14 and 7x7 layers);
    /// else [`Schedule::default_for`]. Split by pixels between two cores, such a product reads
    /// half its input from the other core's cache (see `kernels::split_k`). Timed alone on two
    /// threads on an AVX-512 Xeon against the one-thread defaults: MobileNet V2's nine such
    /// projections 0.65-0.95 of their time, ShuffleNet V2's 116, 232 and 244-channel layers
    /// 0.81-0.90. Left to the one-thread default, no faster split: 28x28 layers that keep
    /// their width (1.0-1.3), 56x56 projections (1.6-1.8), 488 to 1024 channels (0.98-1.28),
    /// and a projection after a step that bands its planes (`window::banded_writer`), whose
    /// halves were written on both cores (MobileNet V2's 144 to 32 at 28x28 split: 0.0437 ms
    /// on two threads, 0.0426 on one).
    pub fn default_parallel(graph: &Graph, id: NodeId, isa: Isa) -> Schedule {
        let serial = Schedule::default_for(graph, id, isa);
        let Op::Conv(conv) = &graph.node(id).op else { return serial };
        let fused = crate::kernels::expand_window::window_after(graph, id).is_some();
        if !crate::kernels::gemm::pointwise(conv) || conv.groups != 1 || fused {
            return serial;
        }
        let x = graph.shape(graph.operands(id)[0]);
        let (k, pixels, m) = (x.channels(), x.item_numel() / x.channels(), conv.out_channels);
        let projects =
            k > m && pixels <= 4 * SMALL_PLANE && !crate::kernels::window::banded_writer(graph, id);
        let small = pixels <= SMALL_PLANE && m * k * 4 <= L2_BYTES;
        match (projects || small) && m * k * pixels >= SPLIT_MACS {
            true => Schedule { sweep: Sweep::SplitK, ..serial },
            false => serial,
        }
    }

    /// The schedules worth timing for convolution `id` of `graph` on `threads` threads (the
    /// default there first), or none when its kernel has no choices (depthwise and
    /// few-channel convolutions).
    pub fn candidates(graph: &Graph, id: NodeId, isa: Isa, threads: usize) -> Vec<Schedule> {
        let Op::Conv(conv) = &graph.node(id).op else { return Vec::new() };
        let cin = graph.shape(graph.operands(id)[0]).channels();
        if crate::kernels::window::depthwise(conv, cin) || crate::kernels::direct::suits(conv, cin) {
            return Vec::new();
        }
        let default = match threads {
            0 | 1 => Schedule::default_for(graph, id, isa),
            _ => Schedule::default_parallel(graph, id, isa),
        };
        // Tiles that keep every accumulator, the pixel vectors and one broadcast in registers.
        let tiles = (1..=4).filter_map(|vectors| {
            let rows = ((isa.registers - 1 - vectors) / vectors).min(16);
            (rows >= 2).then_some([rows, vectors])
        });
        let pointwise = crate::kernels::gemm::pointwise(conv);
        let winograd = crate::kernels::winograd::suits(conv, cin);
        // The sweep is a choice of the products whose tiles run in one flat order: 1x1,
        // Winograd and im2col convolutions (their panels read once for each channel tile or
        // the weights once for each pixel tile).
        let mut methods = Vec::new();
        if pointwise && crate::kernels::expand_window::window_after(graph, id).is_some() {
            // Fused with its depthwise reader, its tiles run in that kernel's one order: only
            // the tile is a choice.
            methods.push((true, default.sweep));
        } else {
            if pointwise {
                methods.extend([
                    (true, Sweep::Panel),
                    (true, Sweep::Packed),
                    (true, Sweep::PackedPixels),
                    (true, Sweep::Streamed),
                ]);
                if conv.groups == 1 {
                    methods.push((true, Sweep::SplitK));
                }
            }
            if pointwise || winograd {
                methods.extend([(true, Sweep::Channels), (true, Sweep::Pixels)]);
            }
            if !pointwise {
                methods.extend([(false, Sweep::Packed), (false, Sweep::PackedPixels)]);
            }
        }
        let mut all = vec![default];
        for tile in std::iter::once(default.tile).chain(tiles) {
            for &(winograd, sweep) in &methods {
                let s = Schedule { tile, winograd, sweep };
                if !all.contains(&s) {
                    all.push(s);
                }
            }
        }
        all
    }
}

/// The key a convolution's schedule is recorded under: everything its kernels depend on.
pub fn kernel_key(graph: &Graph, id: NodeId) -> Option<String> {
    let Op::Conv(conv) = &graph.node(id).op else { return None };
    let x = graph.shape(graph.operands(id)[0]).dims();
    let y = graph.shape(Value { node: id, port: 0 }).dims();
    let pair = |p: [usize; 2]| format!("{}x{}", p[0], p[1]);
    Some(format!(
        "conv {}x{}x{}x{} -> {}x{}x{} k{} s{} p{} d{} g{}",
        x[0],
        x[1],
        x[2],
        x[3],
        y[1],
        y[2],
        y[3],
        pair(conv.kernel),
        pair(conv.stride),
        pair(conv.padding),
        pair(conv.dilation),
        conv.groups
    ))
}

/// Chosen schedules by kernel key, for one CPU.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedules {
    /// Measured on one thread.
    chosen: BTreeMap<String, Schedule>,
    /// Measured on several threads. Where one differs from the one-thread choice, the
    /// convolution's step holds both and takes this one while the pool runs more than one
    /// thread: split over two cores, a product's fastest sweep changes (MobileNet V2's 14x14
    /// layers: packed panels alone, per-task panels on two threads).
    parallel: BTreeMap<String, Schedule>,
    /// Whether kernels may transform weights at compile time (Winograd): not where the
    /// weights blob is refreshed from the parameters at run time, entry by entry (training).
    transformed_weights: bool,
    /// Whether a step may hold a variant for several threads (see [`Schedules::one_thread`]).
    several_threads: bool,
}

/// No chosen schedules: every kernel takes its default.
pub static DEFAULTS: Schedules = Schedules {
    chosen: BTreeMap::new(),
    parallel: BTreeMap::new(),
    transformed_weights: true,
    several_threads: true,
};

/// Defaults for code whose weights are reloaded from the parameters (`Reloadable`): every
/// weight in the blob is a parameter as it is, so no Winograd.
pub static RELOADABLE: Schedules = Schedules {
    chosen: BTreeMap::new(),
    parallel: BTreeMap::new(),
    transformed_weights: false,
    several_threads: true,
};

impl Default for Schedules {
    fn default() -> Schedules {
        DEFAULTS.clone()
    }
}

impl Schedules {
    /// The schedule of convolution `id` of `graph` on one thread: the chosen one, else the
    /// default.
    pub fn get(&self, graph: &Graph, id: NodeId, isa: Isa) -> Schedule {
        let schedule = kernel_key(graph, id)
            .and_then(|key| self.chosen.get(&key).copied())
            .unwrap_or_else(|| Schedule::default_for(graph, id, isa));
        self.allowed(schedule)
    }

    /// The schedule of convolution `id` of `graph` on several threads (the chosen one, else
    /// [`Schedule::default_parallel`]), where it differs from [`Schedules::get`]'s.
    pub fn get_parallel(&self, graph: &Graph, id: NodeId, isa: Isa) -> Option<Schedule> {
        if !self.several_threads {
            return None;
        }
        let schedule = match self.parallel.get(&kernel_key(graph, id)?) {
            Some(&chosen) => chosen,
            None => Schedule::default_parallel(graph, id, isa),
        };
        let schedule = self.allowed(schedule);
        (schedule != self.get(graph, id, isa)).then_some(schedule)
    }

    /// These choices for code that will run on one thread: no step holds a variant for several
    /// threads, which there would only cost compile time (ShuffleNet V2 1.0x compiles in
    /// 3.7-3.9 s with them, 2.7-3.1 without).
    pub fn one_thread(&self) -> Schedules {
        Schedules { several_threads: false, ..self.clone() }
    }

    /// `schedule` as these kernels may compute it.
    fn allowed(&self, schedule: Schedule) -> Schedule {
        Schedule { winograd: schedule.winograd && self.transformed_weights, ..schedule }
    }

    /// `schedule` for kernel `key` on any number of threads, the defaults for every other: how
    /// a candidate is timed and tested. Recorded for one thread alone, the step would run the
    /// several-threads default on two.
    pub fn only(key: String, schedule: Schedule) -> Schedules {
        let mut schedules = Schedules::default();
        schedules.insert_parallel(key.clone(), schedule);
        schedules.insert(key, schedule);
        schedules
    }

    /// Records `schedule` for kernel `key` on one thread.
    pub fn insert(&mut self, key: String, schedule: Schedule) {
        self.chosen.insert(key, schedule);
    }

    /// Records `schedule` for kernel `key` on several threads.
    pub fn insert_parallel(&mut self, key: String, schedule: Schedule) {
        self.parallel.insert(key, schedule);
    }

    /// How many choices are recorded, for one thread and for several.
    pub fn len(&self) -> usize {
        self.chosen.len() + self.parallel.len()
    }

    /// Whether no convolution has a chosen schedule.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The CPU a cache entry was measured on: its LLVM model name and vector width.
pub fn cpu_name(target: &Target) -> String {
    format!("{} ({} lanes)", target.cpu, target.isa().lanes)
}

/// One measured choice in the cache file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// [`cpu_name`] of the machine it was measured on.
    pub cpu: String,
    /// [`kernel_key`] of the convolution.
    pub kernel: String,
    /// The fastest schedule.
    pub schedule: Schedule,
    /// Threads the kernel was timed with.
    pub threads: usize,
    /// Median milliseconds of the fastest schedule.
    pub median_ms: f64,
    /// Median milliseconds of the default schedule.
    pub default_ms: f64,
}

impl Entry {
    /// What an entry is recorded under: its CPU, kernel and thread count.
    fn key(&self) -> (&str, &str, usize) {
        (&self.cpu, &self.kernel, self.threads)
    }
}

/// The cache file: measured choices for any number of CPUs, kernels and thread counts (JSON).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cache {
    /// Every measured choice, one per CPU, kernel and thread count.
    pub entries: Vec<Entry>,
}

impl Cache {
    /// Reads the cache at `path`; an absent file is an empty cache.
    pub fn load(path: &Path) -> Result<Cache, Error> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                Error::BadCache(format!("{}: {e} (delete it, or run `archc tune` again)", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Cache::default()),
            Err(e) => Err(Error::BadCache(format!("{}: {e}", path.display()))),
        }
    }

    /// Writes the cache to `path` whole (a temporary file renamed over it), creating its folder.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(folder)?;
        let mut file = tempfile::NamedTempFile::new_in(folder)?;
        serde_json::to_writer_pretty(&mut file, self).map_err(std::io::Error::other)?;
        file.persist(path).map_err(|e| e.error)?;
        Ok(())
    }

    /// Records `entry`, replacing the one for the same CPU, kernel and thread count.
    pub fn record(&mut self, entry: Entry) {
        self.entries.retain(|e| e.key() != entry.key());
        self.entries.push(entry);
    }

    /// The entry of kernel `kernel` on CPU `cpu` (a [`cpu_name`]) timed on `threads` threads,
    /// if one was recorded.
    pub fn entry(&self, cpu: &str, kernel: &str, threads: usize) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key() == (cpu, kernel, threads))
    }

    /// The choices measured on `target`'s CPU: on one thread, and on several (the fewest
    /// threads above one where a kernel was timed on more than one count).
    pub fn schedules_for(&self, target: &Target) -> Schedules {
        let cpu = cpu_name(target);
        let mut schedules = Schedules::default();
        let mut mine: Vec<&Entry> = self.entries.iter().filter(|e| e.cpu == cpu).collect();
        mine.sort_by_key(|e| std::cmp::Reverse(e.threads));
        for e in mine {
            match e.threads {
                0 | 1 => schedules.insert(e.kernel.clone(), e.schedule),
                _ => schedules.insert_parallel(e.kernel.clone(), e.schedule),
            }
        }
        schedules
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(cpu: &str, kernel: &str, rows: usize) -> Entry {
        Entry {
            cpu: cpu.into(),
            kernel: kernel.into(),
            schedule: Schedule { tile: [rows, 2], winograd: false, sweep: Sweep::Pixels },
            threads: 1,
            median_ms: 1.0,
            default_ms: 2.0,
        }
    }

    #[test]
    fn cache_round_trips_and_keeps_one_entry_per_cpu_kernel_and_thread_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/schedules.json");
        assert_eq!(Cache::load(&path).unwrap(), Cache::default(), "an absent file is an empty cache");
        let target = Target::named("x86_64-linux-gnu").unwrap();
        let mut cache = Cache::default();
        cache.record(entry(&cpu_name(&target), "conv a", 4));
        cache.record(entry("other cpu", "conv a", 2));
        cache.record(entry(&cpu_name(&target), "conv a", 3));
        cache.record(Entry { threads: 2, ..entry(&cpu_name(&target), "conv a", 6) });
        cache.record(Entry { threads: 4, ..entry(&cpu_name(&target), "conv a", 4) });
        cache.save(&path).unwrap();
        let loaded = Cache::load(&path).unwrap();
        assert_eq!(loaded.entries.len(), 4);
        let schedules = loaded.schedules_for(&target);
        assert_eq!(schedules.len(), 2);
        assert_eq!(schedules.chosen["conv a"].tile, [3, 2], "the later measurement replaced the earlier");
        assert_eq!(schedules.parallel["conv a"].tile, [6, 2], "several threads: the fewest above one");
    }

    #[test]
    fn malformed_cache_names_the_file_and_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("schedules.json");
        std::fs::write(&path, "{\"entries\": [ {\"cpu\": 3} ]}").unwrap();
        let message = Cache::load(&path).unwrap_err().to_string();
        assert!(message.contains("schedules.json") && message.contains("line 1"), "{message}");
    }

    /// The network of `body` (RON) over a square input of `channels` planes of side `side`.
    fn square_input(channels: usize, side: usize, body: &str) -> Graph {
        let text = format!(
            r#"Network(name: "n", input: Image(channels: {channels}, height: {side}, width: {side}),
                body: [{body}])"#
        );
        ir::from_ron_str(&text, "n.ron", &ir::BuildOptions { batch: 1, overrides: vec![] }).unwrap()
    }

    /// The default sweep on `isa` of convolution `conv` (RON) over a square input of `channels`
    /// planes of side `side`.
    fn default_sweep(isa: Isa, channels: usize, side: usize, conv: &str) -> Sweep {
        let graph = square_input(channels, side, conv);
        let conv = graph.node_ids().find(|&id| matches!(graph.node(id).op, Op::Conv(_))).unwrap();
        Schedule::default_for(&graph, conv, isa).sweep
    }

    #[test]
    fn small_planes_default_to_packed_panels_heavy_weights_to_the_pixel_order_and_large_inputs_to_streams() {
        let isa = Target::named("x86_64-linux-gnu").unwrap().isa();
        let sweep = |channels: usize, side: usize, out: usize| {
            default_sweep(isa, channels, side, &format!("Conv(out: {out}, kernel: 1)"))
        };
        // ShuffleNet V2 2.0x's last 1x1 conv: 8 MB of weights on a 7x7 plane.
        assert_eq!(sweep(976, 7, 2048), Sweep::PackedPixels);
        assert_eq!(sweep(244, 14, 244), Sweep::Packed);
        // Past 16x16: packed per task, or the pixel order where the weights outgrow L2, or
        // streamed rows where the input outgrows it four times over (MobileNet V2's 1.6 MB).
        assert_eq!(sweep(122, 28, 122), Sweep::Panel);
        assert_eq!(sweep(64, 28, 1280), Sweep::Pixels);
        assert_eq!(sweep(32, 112, 16), Sweep::Streamed);
        assert_eq!(sweep(16, 112, 96), Sweep::Panel);
    }

    #[test]
    fn avx512_streams_where_avx2_takes_panels() {
        let avx2 = Target::named("x86_64-linux-gnu").unwrap();
        let avx512 = avx2.clone().with_cpu("x86-64-v4").unwrap();
        // MobileNet V2's 192 to 32 projection at 28x28: 602 KB of input, 24 KB of weights.
        let projection = "Conv(out: 32, kernel: 1)";
        assert_eq!(default_sweep(avx2.isa(), 192, 28, projection), Sweep::Panel);
        assert_eq!(default_sweep(avx512.isa(), 192, 28, projection), Sweep::Streamed);
    }

    #[test]
    fn im2col_convolutions_read_the_smaller_operand_again() {
        let isa = Target::named("x86_64-linux-gnu").unwrap().isa();
        let sweep = |channels: usize, side: usize, out: usize, kernel: usize| {
            default_sweep(isa, channels, side, &format!("Conv(out: {out}, kernel: {kernel}, stride: 2)"))
        };
        // ResNet-18's stride-2 convolutions: 128 channels on 28x28 outputs, 512 on 7x7.
        assert_eq!(sweep(64, 56, 128, 3), Sweep::Packed);
        assert_eq!(sweep(256, 14, 512, 3), Sweep::PackedPixels);
        assert_eq!(sweep(256, 14, 512, 1), Sweep::PackedPixels);
    }

    #[test]
    fn candidates_fit_the_registers_and_start_with_the_default() {
        let text = r#"Network(name: "n", input: Image(channels: 16, height: 8, width: 8), body: [
            Conv(out: 16, kernel: 3), Conv(out: 16, kernel: 3, groups: 16), Conv(out: 8, kernel: 1)])"#;
        let graph =
            ir::from_ron_str(text, "n.ron", &ir::BuildOptions { batch: 1, overrides: vec![] }).unwrap();
        let isa = Target::named("x86_64-linux-gnu").unwrap().isa();
        let convs: Vec<NodeId> =
            graph.node_ids().filter(|&id| matches!(graph.node(id).op, Op::Conv(_))).collect();
        let counts: Vec<usize> =
            convs.iter().map(|&id| Schedule::candidates(&graph, id, isa, 1).len()).collect();
        // 3x3: four tiles by Winograd with either flat sweep or by im2col in either packed
        // order; depthwise: none; 1x1: four tiles by any of seven sweeps (split-K for one
        // group only).
        assert_eq!(counts, [16, 0, 28]);
        for &id in &convs {
            for threads in [1, 2] {
                let candidates = Schedule::candidates(&graph, id, isa, threads);
                if let Some(first) = candidates.first() {
                    let default = match threads {
                        1 => Schedule::default_for(&graph, id, isa),
                        _ => Schedule::default_parallel(&graph, id, isa),
                    };
                    assert_eq!(*first, default, "the default on {threads} threads first");
                }
                for s in candidates {
                    let [rows, vectors] = s.tile;
                    assert!(rows * vectors + vectors < isa.registers, "{s:?}");
                }
            }
        }
        let text = r#"Network(name: "n", input: Image(channels: 8, height: 8, width: 8), body: [
            Conv(out: 16, kernel: 1, act: Relu6), Conv(out: 16, kernel: 3, groups: 16)])"#;
        let graph =
            ir::from_ron_str(text, "n.ron", &ir::BuildOptions { batch: 1, overrides: vec![] }).unwrap();
        let graph = passes::optimize(&graph, &ir::Weights::seeded(&graph, 0), passes::Level::O2, None).graph;
        let expansion = graph.node_ids().find(|&id| matches!(graph.node(id).op, Op::Conv(_))).unwrap();
        let candidates = Schedule::candidates(&graph, expansion, isa, 1);
        assert_eq!(candidates.len(), 4, "fused with its depthwise reader, only tiles: {candidates:?}");
    }

    #[test]
    fn several_threads_split_the_reduction_of_small_projections_by_default() {
        let isa = Target::named("x86_64-linux-gnu").unwrap().isa();
        // The sweeps of convolution `conv` over `channels` planes of side `side` by default on
        // one thread and on several, and the several-threads schedule the defaults hold.
        let sweeps = |channels: usize, side: usize, conv: &str| {
            let graph = square_input(channels, side, conv);
            let id = graph.node_ids().find(|&id| matches!(graph.node(id).op, Op::Conv(_))).unwrap();
            let parallel = DEFAULTS.get_parallel(&graph, id, isa).map(|s| s.sweep);
            let defaults =
                [Schedule::default_for(&graph, id, isa), Schedule::default_parallel(&graph, id, isa)];
            (defaults.map(|s| s.sweep), parallel)
        };
        let split = Some(Sweep::SplitK);
        // MobileNet V2's projections at 14x14 and 28x28; ShuffleNet V2 1.0x's 116 channels.
        assert_eq!(sweeps(192, 14, "Conv(out: 64, kernel: 1)"), ([Sweep::Packed, Sweep::SplitK], split));
        assert_eq!(sweeps(144, 28, "Conv(out: 32, kernel: 1)").1, split);
        assert_eq!(sweeps(116, 14, "Conv(out: 116, kernel: 1)").1, split);
        // A projection at 56x56, a 28x28 layer keeping its width, weights past L2, a 3x3 conv.
        assert_eq!(sweeps(144, 56, "Conv(out: 24, kernel: 1)").1, None);
        assert_eq!(sweeps(116, 28, "Conv(out: 116, kernel: 1)").1, None);
        assert_eq!(sweeps(488, 14, "Conv(out: 488, kernel: 1)").1, None);
        assert_eq!(sweeps(64, 14, "Conv(out: 32, kernel: 3, padding: 1)").1, None);
        // An expansion sharing its step with the depthwise conv after it has no sweep to choose;
        // a projection reading a step that bands its planes keeps its one-thread sweep.
        let block = "Conv(name: \"expand\", out: 144, kernel: 1, act: Relu6),
            Conv(out: 144, kernel: 3, stride: 2, padding: 1, groups: 144, act: Relu6),
            Conv(name: \"project\", out: 32, kernel: 1)";
        let graph = square_input(24, 56, block);
        let graph = passes::optimize(&graph, &ir::Weights::seeded(&graph, 0), passes::Level::O2, None).graph;
        let conv = |name: &str| graph.node_ids().find(|&id| graph.node(id).name == name).unwrap();
        assert_eq!(DEFAULTS.get_parallel(&graph, conv("expand"), isa), None);
        assert!(crate::kernels::window::banded_writer(&graph, conv("project")));
        assert_eq!(DEFAULTS.get_parallel(&graph, conv("project"), isa), None);
        // A schedule recorded for one thread alone leaves several to their default; a candidate
        // under test holds on any number.
        let graph = square_input(192, 14, "Conv(out: 64, kernel: 1)");
        let id = graph.node_ids().find(|&id| matches!(graph.node(id).op, Op::Conv(_))).unwrap();
        let key = kernel_key(&graph, id).unwrap();
        let candidate = Schedule { tile: [4, 2], winograd: false, sweep: Sweep::Channels };
        let mut serial = Schedules::default();
        serial.insert(key.clone(), candidate);
        assert_eq!(serial.get_parallel(&graph, id, isa).map(|s| s.sweep), split);
        let only = Schedules::only(key, candidate);
        assert_eq!((only.get(&graph, id, isa), only.get_parallel(&graph, id, isa)), (candidate, None));
    }
}
