//! Search spaces: loading and its located errors, genomes and their choices, the networks
//! they build and write out, and the spaces committed under `zoo/spaces/`.

use std::path::{Path, PathBuf};

use search::space::Space;

/// A small template: two stages of convolutions, a kernel size and a switchable activation.
const NET: &str = r#"// a template
Network(
    name: "tiny",
    input: Image(channels: 1, height: 8, width: 8),
    params: {
        "widths": [8, 16],   // per stage
        "k": 3,
        "swish": false,
        "classes": 10,
    },
    body: [
        Stages(names: ["s1", "s2"], vars: {"c": "widths"}, body: [
            Conv(out: "c", kernel: "k", bn: true),
            Conv(out: "c", kernel: 1, groups: 2, bn: true),
            If(cond: "swish", then: [Hardswish], else: [Relu]),
        ]),
        GlobalAvgPool,
        Linear(name: "fc", out: "classes"),
    ],
)"#;

/// The choices of the valid test space.
const CHOICES: &str = r#"{
        "widths": Each([[4, 8], [16, 24, 32]]),
        "k": One([1, 3, "k_max"]),
        "swish": One([false, true]),
    }"#;

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        let files = Files { dir: tempfile::tempdir().unwrap() };
        files.write("tiny.net.ron", &NET.replace(r#""k": 3,"#, r#""k": 3, "k_max": 5,"#));
        files.write("base.ron", NET);
        files
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A space file with `choices` and extra fields, and its path.
    fn space(&self, choices: &str, extra: &str) -> (PathBuf, String) {
        let text = format!(
            "Space(\n    name: \"tiny\",\n    network: \"tiny.net.ron\",\n    choices: {choices},\n{extra})\n"
        );
        (self.write("tiny.ron", &text), text)
    }

    fn load(&self, choices: &str, extra: &str) -> Space {
        Space::load(&self.space(choices, extra).0).unwrap()
    }

    /// The error of loading a space, and the `file:line:col: ` prefix of the first `needle`
    /// in its text (`nth` occurrence, from 0).
    fn error(&self, choices: &str, extra: &str, needle: &str, nth: usize) -> (String, String) {
        let (path, text) = self.space(choices, extra);
        let err = Space::load(&path).unwrap_err().to_string();
        let offset =
            text.match_indices(needle).nth(nth).unwrap_or_else(|| panic!("no `{needle}` in {text}")).0;
        let line = text[..offset].matches('\n').count() + 1;
        let col = offset - text[..offset].rfind('\n').map_or(0, |i| i + 1) + 1;
        (err, format!("{}:{line}:{col}: ", path.display()))
    }
}

fn printed(graph: &ir::Graph) -> String {
    ir::print::to_text(graph)
}

#[test]
fn genes_choices_and_size() {
    let files = Files::new();
    let space = files.load(CHOICES, "");
    assert_eq!(space.name(), "tiny");
    // By parameter name, then element: k, swish, widths[0], widths[1].
    assert_eq!(space.genes(), vec![3, 2, 2, 3]);
    assert_eq!(space.size(), 36);
    let pairs =
        |p: &[(&str, &str)]| p.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
    assert_eq!(
        space.choices(&[2, 1, 0, 2]).unwrap(),
        pairs(&[("k", "k_max"), ("swish", "true"), ("widths", "[4, 32]")])
    );
    assert_eq!(
        space.choices(&[0, 0, 1, 0]).unwrap(),
        pairs(&[("k", "1"), ("swish", "false"), ("widths", "[8, 16]")])
    );
}

#[test]
fn a_genome_builds_as_its_choices_as_overrides() {
    let files = Files::new();
    let space = files.load(CHOICES, "");
    for genome in [[0, 0, 0, 0], [2, 1, 1, 2], [1, 0, 1, 1]] {
        let overrides = space.choices(&genome).unwrap();
        let options = ir::BuildOptions { batch: 2, overrides };
        let direct = ir::from_ron_file(space.network(), &options).unwrap();
        let built = space.build(&genome, 2).unwrap();
        assert_eq!(printed(&built), printed(&direct));
    }
    // Different genomes are different networks.
    let a = printed(&space.build(&[0, 0, 0, 0], 1).unwrap());
    let b = printed(&space.build(&[2, 1, 1, 2], 1).unwrap());
    assert_ne!(a, b);
    assert!(b.contains("hardswish") && b.contains("kernel=5") && b.contains(": [1, 32, 8, 8]"), "{b}");
}

#[test]
fn network_text_builds_the_same_graph() {
    let files = Files::new();
    let space = files.load(CHOICES, "");
    for genome in [[0, 0, 0, 0], [2, 1, 1, 2], [1, 1, 0, 1]] {
        let built = space.build(&genome, 1).unwrap();
        let text = space.network_text(&genome, built.name()).unwrap();
        assert!(text.starts_with("// a template\n") && text.contains("// per stage"), "{text}");
        let parsed = ir::from_ron_str(&text, "found.ron", &ir::BuildOptions::default()).unwrap();
        assert_eq!(printed(&parsed), printed(&built));
    }
    let renamed = space.network_text(&[0, 0, 0, 0], "found_1").unwrap();
    assert!(renamed.contains(r#"name: "found_1","#), "{renamed}");
}

#[test]
fn genomes_that_do_not_fit_are_errors() {
    let files = Files::new();
    let space = files.load(CHOICES, "");
    let err = space.build(&[0, 0, 0], 1).unwrap_err().to_string();
    assert_eq!(err, "space `tiny`: a genome has 4 genes, not 3");
    let err = space.choices(&[0, 2, 0, 0]).unwrap_err().to_string();
    assert_eq!(err, "space `tiny`: gene 1 is 2, but it has 2 options");
    assert!(space.network_text(&[0, 0, 0, 0, 0], "x").is_err());
}

#[test]
fn a_genome_that_does_not_build_names_its_choices() {
    let files = Files::new();
    // `groups: 2` needs an even width; 5 is not.
    let space = files.load(r#"{"widths": Each([[4, 5], [16]])}"#, "");
    assert!(space.build(&[0, 0], 1).is_ok());
    let err = space.build(&[1, 0], 1).unwrap_err();
    assert!(matches!(err, search::Error::Build { .. }), "{err:?}");
    let err = err.to_string();
    assert!(err.starts_with("space `tiny` with widths=[5, 16]: "), "{err}");
    assert!(err.contains("tiny.net.ron:"), "{err}");
}

#[test]
fn unknown_parameter() {
    let files = Files::new();
    let (err, at) = files.error(r#"{"k": One([3]), "depth": One([1, 2])}"#, "", "One([1, 2])", 0);
    assert_eq!(
        err,
        format!(
            "{at}the network has no parameter `depth`; its parameters are: classes, k, k_max, swish, widths"
        )
    );
}

#[test]
fn empty_options() {
    let files = Files::new();
    let (err, at) = files.error(r#"{"k": One([])}"#, "", "[]", 0);
    assert_eq!(err, format!("{at}`k` has no options"));
    let (err, at) = files.error(r#"{"widths": Each([[8], []])}"#, "", "[]", 0);
    assert_eq!(err, format!("{at}element 1 of `widths` has no options"));
}

#[test]
fn each_must_match_the_list() {
    let files = Files::new();
    let (err, at) = files.error(r#"{"widths": Each([[8], [16], [32]])}"#, "", "[[8]", 0);
    assert_eq!(err, format!("{at}`widths` has 2 elements, but `Each` gives options for 3"));
    let (err, at) = files.error(r#"{"k": Each([[3], [5]])}"#, "", "Each", 0);
    assert_eq!(
        err,
        format!("{at}`Each` sets a list parameter element by element, but `k` is the number 3; use `One`")
    );
}

#[test]
fn missing_files() {
    let files = Files::new();
    let text = "Space(name: \"x\",\n  network: \"nowhere.net.ron\", choices: {})";
    let path = files.write("x.ron", text);
    let err = Space::load(&path).unwrap_err().to_string();
    assert!(err.starts_with(&format!("{}:2:12: cannot read the network file ", path.display())), "{err}");
    assert!(err.contains("nowhere.net.ron"), "{err}");

    let (err, at) = files.error(CHOICES, "    baselines: [\"base.ron\", \"gone.ron\"],\n", "\"gone.ron\"", 0);
    assert!(err.starts_with(&format!("{at}baseline ")) && err.ends_with("gone.ron is not a file"), "{err}");
    let missing = files.dir.path().join("missing.ron");
    assert!(matches!(Space::load(&missing), Err(search::Error::Io { .. })));
}

#[test]
fn syntax_and_defaults_errors_are_located() {
    let files = Files::new();
    let (err, at) = files.error(CHOICES, "    colour: 3,\n", "colour", 0);
    assert!(err.starts_with(&at), "{err} vs {at}");
    assert!(err.contains("colour"), "{err}");
    let (err, at) = files.error(CHOICES, "    budget: \"ten minutes\",\n", "\"ten minutes\"", 0);
    assert!(err.starts_with(&format!("{at}bad duration `ten minutes`")), "{err}");
    let (err, at) =
        files.error(CHOICES, "    training: (epochs: 2, augment: \"sideways\"),\n", "\"sideways\"", 0);
    assert!(err.starts_with(&format!("{at}bad augmentation `sideways`")), "{err}");
    let (err, at) = files.error(CHOICES, "    data: \"tape:/dev/st0\",\n", "\"tape", 0);
    assert!(err.starts_with(&format!("{at}bad data spec")), "{err}");
    let (err, at) = files.error(r#"{"k": One(["3 +"])}"#, "", "3 +", 0);
    assert!(err.starts_with(&at), "{err} vs {at}");
}

#[test]
fn defaults_are_read() {
    let files = Files::new();
    let extra = "    data: \"synthetic\",\n    split: \"100,20\",\n    training: (epochs: 3, lr: 0.05, augment: \"shift:2\"),\n    budget: \"1h30m\",\n    baselines: [\"base.ron\"],\n";
    let space = files.load(CHOICES, extra);
    let d = space.defaults();
    assert_eq!(d.data.as_deref(), Some("synthetic"));
    assert_eq!(d.split.as_deref(), Some("100,20"));
    assert_eq!((d.recipe.epochs, d.long_epochs, d.recipe.lr), (3, 6, 0.05));
    assert_eq!(d.recipe.augment, "shift:2");
    assert_eq!(d.budget, std::time::Duration::from_secs(5400));
    assert_eq!(space.baselines(), &[files.dir.path().join("base.ron")]);
}

#[test]
fn a_space_where_nothing_builds_is_an_error() {
    let files = Files::new();
    // The first width, 5, breaks `groups: 2`.
    let (err, at) = files.error(r#"{"widths": Each([[5, 4], [16]])}"#, "", "{\"widths\"", 0);
    assert!(
        err.starts_with(&format!("{at}the network does not build with the first option of every choice: ")),
        "{err}"
    );

    // A template that does not build as written.
    files.write("tiny.net.ron", &NET.replace("[8, 16]", "[8, 15]"));
    let (err, at) = files.error(r#"{"k": One([3])}"#, "", "\"tiny.net.ron\"", 0);
    assert!(err.starts_with(&format!("{at}the network does not build with its defaults: ")), "{err}");
    assert!(err.contains("tiny.net.ron:"), "{err}");
}

fn zoo_space(name: &str) -> Space {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../zoo/spaces").join(name);
    Space::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// A deterministic pseudo-random genome (xorshift), enough to sample a space.
fn random_genome(genes: &[usize], state: &mut u64) -> Vec<usize> {
    genes
        .iter()
        .map(|&n| {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            (*state % n as u64) as usize
        })
        .collect()
}

fn macs(graph: &ir::Graph) -> u64 {
    ir::metrics::metrics(graph).totals.macs
}

#[test]
fn committed_spaces_load_and_random_genomes_build() {
    for (name, baselines) in
        [("shufflenet_v2_mnist.ron", 2), ("shufflenet_v2_cifar.ron", 1), ("mobilenet_v2_cifar.ron", 1)]
    {
        let space = zoo_space(name);
        assert_eq!(space.baselines().len(), baselines, "{name}");
        assert!(space.size() > 1000, "{name}: {}", space.size());
        assert!(space.defaults().data.is_some(), "{name}");
        let mut state = 0x9e37_79b9_7f4a_7c15;
        let tries = 40;
        let built =
            (0..tries).filter(|_| space.build(&random_genome(&space.genes(), &mut state), 1).is_ok()).count();
        assert_eq!(built, tries, "{name}: {built} of {tries} random genomes build");
    }
}

#[test]
fn the_mnist_space_reaches_far_below_shufflenet_v2_x0_5() {
    let space = zoo_space("shufflenet_v2_mnist.ron");
    let baseline = ir::from_ron_file(&space.baselines()[0], &ir::BuildOptions::default()).unwrap();
    assert_eq!(baseline.name(), "mnist_shufflenet_v2_x0_5");
    let smallest = space.build(&vec![0; space.genes().len()], 1).unwrap();
    assert!(macs(&smallest) * 10 < macs(&baseline), "{} vs {}", macs(&smallest), macs(&baseline));
    // The template's defaults are the baseline itself (but for its name).
    let template = ir::from_ron_file(space.network(), &ir::BuildOptions::default()).unwrap();
    assert_eq!(macs(&template), macs(&baseline));
}
