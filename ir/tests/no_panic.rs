//! The front-end never panics: valid networks, mutated at random (bytes and tokens deleted,
//! inserted, swapped; numbers turned into 0, -1 or huge values; strings into other names and
//! expressions), build or fail with an error, and every graph they build verifies and prints.

use proptest::prelude::*;
use proptest::sample::{Index, select};

/// Small networks that between them use every statement, so mutations reach every path.
const SEEDS: &[&str] = &[
    include_str!("../../zoo/shufflenet_v2_x1_0.ron"),
    r#"Network(
    name: "tiny",
    input: Image(channels: 3, height: 16, width: 16),
    params: { "width": 0.5, "c": "make_divisible(32 * width, 8)" },
    body: [
        Conv(name: "stem", out: "c", kernel: 3, stride: 2, bn: true, act: Relu6),
        BatchNorm(eps: 1e-3),
        Hardswish,
        MaxPool(kernel: 3, stride: 2, padding: 1),
        AvgPool(kernel: 2),
        Conv(out: "c * 2", kernel: 1, dilation: 1, padding: 0, bias: true, act: Sigmoid),
        Relu,
        GlobalAvgPool,
        Flatten,
        Dropout(p: 0.2),
        Linear(name: "fc", out: 10, bias: false),
        Softmax,
    ],
)"#,
    r#"Network(
    name: "residual",
    input: Image(channels: 16, height: 8, width: 8),
    params: { "depths": [1, 2], "widths": [16, 32], "strides": [1, 2] },
    blocks: {
        "basic": Block(params: ["c", "stride"], body: [
            If(cond: "stride == 1 && in_channels == c", then: [
                Alias(name: "shortcut", from: "input"),
            ], else: [
                Conv(name: "downsample", out: "c", kernel: 1, stride: "stride", bn: true),
                Alias(name: "shortcut", from: "downsample"),
            ]),
            Conv(name: "conv1", from: "input", out: "c", kernel: 3, stride: "stride", bn: "bn1", act: Relu),
            Conv(name: "conv2", out: "c", kernel: 3, bn: "bn2"),
            Add(["conv2", "shortcut"]),
            Relu,
        ]),
    },
    body: [
        Stages(names: ["layer1", "layer2"], vars: {"c": "widths", "n": "depths", "s": "strides"}, body: [
            Repeat(times: "n", var: "i", body: [
                Use(block: "basic", with: {"c": "c", "stride": "max(s - i * s, 1)"}),
            ]),
        ]),
    ],
)"#,
    r#"Network(
    name: "shuffle",
    input: Image(channels: 24, height: 8, width: 8),
    blocks: {
        "se": Block(params: ["c"], body: [
            Sequence(name: "fc", body: [
                GlobalAvgPool,
                Conv(out: "max(c // 4, 8)", kernel: 1, bias: true, act: Relu),
                Conv(out: "c", kernel: 1, bias: true, act: Sigmoid),
            ]),
            Mul(["input", "fc"]),
        ]),
    },
    body: [
        Split(sizes: [8, 16], names: ["a", "b"]),
        Conv(name: "b2", out: 16, kernel: 3, groups: 16),
        Concat(["a", "b2"]),
        ChannelShuffle(groups: 3),
        Reshape(shape: [3, 8, 8, 8]),
        Transpose(perm: [1, 0, 2, 3]),
        Reshape(shape: ["in_channels * 3", 8, 8]),
        Use(name: "se1", block: "se", with: {"c": "in_channels"}),
        Split(parts: 2, names: ["x", "y"], from: "se1"),
    ],
)"#,
];

/// Numbers that sit on the edges: zero, negative, odd, and too large for sizes or for i64.
const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1",
    "3",
    "7",
    "0.5",
    "-0.0",
    "1e300",
    "NaN",
    "inf",
    "65536",
    "2147483647",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
];

/// Expressions and names a string may become: tensor names that exist elsewhere, names that
/// do not, and expressions that divide by zero, overflow, index out of range or nest deeply.
const STRINGS: &[&str] = &[
    "",
    "input",
    "x",
    "keep",
    "branch2",
    "stage2",
    "unit",
    "down",
    "c",
    "c / 0",
    "c // -1",
    "c * 9223372036854775807",
    "-9223372036854775807 - 1",
    "c / 3",
    "in_channels * 65536",
    "stage_out[7]",
    "len(c)",
    "sqrt(-1)",
    "make_divisible(c, 0)",
    "((((((((((((((((((((((((((((((((((c))))))))))))))))))))))))))))))))))",
    "true",
    "!c",
];

/// Text worth inserting: RON punctuation, comments, and whole statements.
const FRAGMENTS: &[&str] = &[
    ",",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ":",
    "\"",
    "//",
    "/*",
    "r#\"",
    "Relu,",
    "Flatten,",
    "GlobalAvgPool,",
    "Conv(out: 8, kernel: 1),",
    "Use(block: \"unit\", with: {\"c\": \"c\"}),",
    "Repeat(times: 3, body: [Relu]),",
    "name: \"x\",",
    "from: \"input\",",
];

#[derive(Clone, Debug)]
enum Mutation {
    DeleteLine(Index),
    CopyLine { line: Index, before: Index },
    DeleteChars(Index, usize),
    InsertText(Index, String),
    ReplaceChar(Index, char),
    DeleteToken(Index),
    CopyToken { token: Index, before: Index },
    SwapTokens(Index, Index),
    ReplaceNumber(Index, &'static str),
    ReplaceString(Index, String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let text = prop_oneof![select(FRAGMENTS).prop_map(str::to_string), "\\PC{1,8}"];
    let string =
        prop_oneof![select(STRINGS).prop_map(str::to_string), "[a-z_0-9 +*/%()<>=!&|,\\[\\]-]{0,12}"];
    // Weighted towards mutations that keep the syntax, so that more mutants get past the
    // parser to the expansion and shape checks.
    prop_oneof![
        2 => any::<Index>().prop_map(Mutation::DeleteLine),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(line, before)| Mutation::CopyLine { line, before }),
        1 => (any::<Index>(), 1..16usize).prop_map(|(at, n)| Mutation::DeleteChars(at, n)),
        1 => (any::<Index>(), text).prop_map(|(at, s)| Mutation::InsertText(at, s)),
        1 => (any::<Index>(), any::<char>()).prop_map(|(at, c)| Mutation::ReplaceChar(at, c)),
        1 => any::<Index>().prop_map(Mutation::DeleteToken),
        1 => (any::<Index>(), any::<Index>())
            .prop_map(|(token, before)| Mutation::CopyToken { token, before }),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::SwapTokens(a, b)),
        4 => (any::<Index>(), select(NUMBERS)).prop_map(|(at, n)| Mutation::ReplaceNumber(at, n)),
        4 => (any::<Index>(), string).prop_map(|(at, s)| Mutation::ReplaceString(at, s)),
    ]
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Number,
    String,
    Other,
}

/// A rough RON tokenizer over characters: string literals, numbers, words, and single
/// punctuation characters; whitespace separates tokens and is not one.
fn tokens(chars: &[char]) -> Vec<(std::ops::Range<usize>, Kind)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        let c = chars[i];
        let kind = if c.is_whitespace() {
            i += 1;
            continue;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i = (i + 1).min(chars.len());
            Kind::String
        } else if c.is_ascii_digit() || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || ".-+_".contains(chars[i])) {
                i += 1;
            }
            Kind::Number
        } else if c.is_alphanumeric() || c == '_' {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            Kind::Other
        } else {
            i += 1;
            Kind::Other
        };
        out.push((start..i, kind));
    }
    out
}

/// The range of a token of the wanted kind (any kind for `None`), chosen by `at`.
fn pick(chars: &[char], at: Index, want: Option<Kind>) -> Option<std::ops::Range<usize>> {
    let found: Vec<_> =
        tokens(chars).into_iter().filter(|(_, k)| want.is_none_or(|w| w == *k)).map(|(r, _)| r).collect();
    (!found.is_empty()).then(|| found[at.index(found.len())].clone())
}

/// The ranges of the lines, each with its line break.
fn lines(chars: &[char]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &c) in chars.iter().enumerate() {
        if c == '\n' {
            out.push(start..i + 1);
            start = i + 1;
        }
    }
    out.push(start..chars.len());
    out
}

fn apply(chars: &mut Vec<char>, m: &Mutation) {
    // Any position from the first character to just past the last.
    let position = |at: &Index, len: usize| at.index(len + 1);
    match m {
        Mutation::DeleteLine(at) => {
            let lines = lines(chars);
            chars.drain(lines[at.index(lines.len())].clone());
        }
        Mutation::CopyLine { line, before } => {
            let lines = lines(chars);
            let copy = chars[lines[line.index(lines.len())].clone()].to_vec();
            let at = lines[before.index(lines.len())].start;
            chars.splice(at..at, copy);
        }
        Mutation::DeleteChars(at, n) => {
            let start = position(at, chars.len());
            chars.drain(start..(start + n).min(chars.len()));
        }
        Mutation::InsertText(at, s) => {
            let at = position(at, chars.len());
            chars.splice(at..at, s.chars());
        }
        Mutation::ReplaceChar(at, c) => {
            if !chars.is_empty() {
                let at = at.index(chars.len());
                chars[at] = *c;
            }
        }
        Mutation::DeleteToken(at) => {
            if let Some(r) = pick(chars, *at, None) {
                chars.drain(r);
            }
        }
        Mutation::CopyToken { token, before } => {
            if let (Some(r), Some(b)) = (pick(chars, *token, None), pick(chars, *before, None)) {
                let copy: Vec<char> = chars[r].to_vec();
                chars.splice(b.start..b.start, copy);
            }
        }
        Mutation::SwapTokens(a, b) => {
            if let (Some(a), Some(b)) = (pick(chars, *a, None), pick(chars, *b, None)) {
                let (first, second) = if a.start <= b.start { (a, b) } else { (b, a) };
                if first.end <= second.start {
                    let (x, y) = (chars[first.clone()].to_vec(), chars[second.clone()].to_vec());
                    chars.splice(second, x);
                    chars.splice(first, y);
                }
            }
        }
        Mutation::ReplaceNumber(at, n) => {
            if let Some(r) = pick(chars, *at, Some(Kind::Number)) {
                chars.splice(r, n.chars());
            }
        }
        Mutation::ReplaceString(at, s) => {
            if let Some(r) = pick(chars, *at, Some(Kind::String)) {
                chars.splice(r, format!("\"{s}\"").chars());
            }
        }
    }
}

/// Builds `text`; a panic fails the property, an error passes, and a graph must verify and print.
fn check(text: &str) -> Result<(), TestCaseError> {
    if let Ok(graph) = ir::from_ron_str(text, "mutant.ron", &ir::BuildOptions::default()) {
        if let Err(e) = ir::verify(&graph) {
            return Err(TestCaseError::fail(format!("the built graph does not verify: {e}\n{text}")));
        }
        ir::print::to_text(&graph);
    }
    Ok(())
}

#[test]
fn seeds_build() {
    for seed in SEEDS {
        let graph = ir::from_ron_str(seed, "seed.ron", &ir::BuildOptions::default())
            .unwrap_or_else(|e| panic!("a seed network does not build: {e}"));
        ir::verify(&graph).expect("a seed network verifies");
    }
}

proptest! {
    // A fixed budget of a few seconds: most mutants fail to parse, the rest build small graphs
    // or stop at the front-end's expansion limit. Integration tests have no lib.rs for proptest
    // to file regressions beside; a failure prints its minimal mutant instead.
    #![proptest_config(ProptestConfig {
        cases: 16000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutated_networks_never_panic(
        seed in select(SEEDS),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let mut chars: Vec<char> = seed.chars().collect();
        for m in &mutations {
            apply(&mut chars, m);
        }
        check(&chars.into_iter().collect::<String>())?;
    }
}
