//! The paper's numbers (Tables 1-4 and 8 of ShuffleNet V2): their schema, the built-in data file
//! and the checks that make a bad file fail when it is read rather than halfway through a run.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Error;

/// The data file compiled into archc, so the comparison needs nothing but the zoo's networks.
const BUILTIN: &str = include_str!("../../data/shufflenet_v2_paper.ron");

/// The name errors in [`BUILTIN`] are reported under.
const BUILTIN_NAME: &str = "search/data/shufflenet_v2_paper.ron";

/// The paper's published numbers.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Paper {
    /// Where the numbers come from.
    pub source: String,
    /// The GPU the paper measured on, and its unit.
    pub gpu: String,
    /// The ARM CPU the paper measured on, and its unit.
    pub arm: String,
    /// Tables 1-4, in order.
    pub experiments: Vec<Experiment>,
    /// Table 8, one entry per cell.
    pub models: Vec<Model>,
}

/// One guideline's controlled experiment (one of Tables 1-4).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Experiment {
    /// The table's number in the paper.
    pub table: u32,
    /// `G1` to `G4`.
    pub guideline: String,
    /// What the guideline says.
    pub claim: String,
    /// The heading of the configuration column (`c1:c2`, `g`, ...).
    pub config: String,
    /// The network parameters a row's channels set, in the order of [`Published::channels`].
    pub params: Vec<String>,
    /// The width columns, `xK` for K times the x1 channels.
    pub columns: Vec<String>,
    /// The configuration the guideline predicts fastest.
    pub favored: String,
    /// The configuration it predicts slowest.
    pub extreme: String,
    /// The configurations, in the paper's order.
    pub rows: Vec<Row>,
}

/// One configuration of an experiment, on both of the paper's platforms.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Row {
    /// The configuration as the paper writes it (`1:2`, `4-fragment-series`, ...).
    pub config: String,
    /// The zoo network that builds it (`zoo/guidelines/<network>.ron`).
    pub network: String,
    /// Channels are built as the nearest multiple of this (a group conv's groups must divide
    /// them, which not all of the paper's counts do).
    #[serde(default)]
    pub channel_multiple: Option<u32>,
    /// The GPU's channels and speeds.
    pub gpu: Published,
    /// The ARM CPU's channels and speeds.
    pub arm: Published,
}

/// What the paper measured for one configuration on one platform.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Published {
    /// The channels at x1, one per [`Experiment::params`].
    pub channels: Vec<u32>,
    /// Speed per column name.
    pub speed: BTreeMap<String, f64>,
}

/// One cell of Table 8.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Model {
    /// The table's row (`ShuffleNet v2`, `MobileNet v1`, ...).
    pub family: String,
    /// The width the cell names (`0.5x`, `0.25`), empty when it names none.
    pub width: String,
    /// The table's column: the complexity class (`~40M`, ...).
    pub column: String,
    /// Top-1 error on ImageNet, percent.
    pub top1_error: f64,
    /// GPU batches/s at batch 8.
    pub gpu: f64,
    /// ARM images/s.
    pub arm: f64,
    /// Millions of multiply-adds, as the paper counts them.
    pub mflops: f64,
    /// The zoo network that rebuilds it (`zoo/<network>.ron`), for those archc measures.
    #[serde(default)]
    pub network: Option<String>,
    /// Parameters to set on that network.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
}

/// One of the paper's two platforms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// GTX 1080Ti.
    Gpu,
    /// Snapdragon 810, one thread.
    Arm,
}

impl Platform {
    /// The lower-case name used in flags and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Gpu => "gpu",
            Platform::Arm => "arm",
        }
    }
}

impl Row {
    /// The paper's numbers for this row on `platform`.
    pub fn on(&self, platform: Platform) -> &Published {
        match platform {
            Platform::Gpu => &self.gpu,
            Platform::Arm => &self.arm,
        }
    }
}

impl Experiment {
    /// The index of the row whose configuration is `config`.
    pub fn row(&self, config: &str) -> Option<usize> {
        self.rows.iter().position(|r| r.config == config)
    }

    /// The width multiplier of each column (`x4` is 4).
    pub fn multipliers(&self) -> Vec<u32> {
        // Checked when the paper was read.
        self.columns.iter().map(|c| multiplier(c).unwrap_or(1)).collect()
    }
}

impl Paper {
    /// The numbers archc ships with.
    pub fn builtin() -> Result<Paper, Error> {
        Paper::parse(BUILTIN, BUILTIN_NAME)
    }

    /// Reads a data file's text; `name` is what errors call it.
    pub fn parse(text: &str, name: &str) -> Result<Paper, Error> {
        let options =
            ron::Options::default().with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME);
        let paper: Paper = options.from_str(text).map_err(|e| Error::Paper {
            at: format!("{name}:{}:{}", e.span.start.line, e.span.start.col),
            message: e.code.to_string(),
        })?;
        paper.check().map_err(|message| Error::Paper { at: name.to_string(), message })?;
        Ok(paper)
    }

    /// Everything the comparison relies on: every row has a speed for every column on both
    /// platforms, one channel count per parameter, and the favored and extreme rows exist.
    fn check(&self) -> Result<(), String> {
        for e in &self.experiments {
            let table = format!("table {}", e.table);
            if e.rows.is_empty() || e.columns.is_empty() {
                return Err(format!("{table}: no rows or no columns"));
            }
            for column in &e.columns {
                if multiplier(column).is_none() {
                    return Err(format!(
                        "{table}: column `{column}` is not `xK` with K a positive whole number"
                    ));
                }
            }
            for config in [&e.favored, &e.extreme] {
                if e.row(config).is_none() {
                    return Err(format!("{table}: no row `{config}`"));
                }
            }
            for row in &e.rows {
                if row.channel_multiple == Some(0) {
                    return Err(format!("{table}, row `{}`: channel_multiple 0", row.config));
                }
                for platform in [Platform::Gpu, Platform::Arm] {
                    let shape = row.on(platform);
                    let at = format!("{table}, row `{}`, {}", row.config, platform.name());
                    if shape.channels.len() != e.params.len() || shape.channels.contains(&0) {
                        return Err(format!("{at}: {} positive channel counts expected", e.params.len()));
                    }
                    for column in &e.columns {
                        check_speed(shape.speed.get(column).copied(), &format!("{at}, column {column}"))?;
                    }
                    if let Some(extra) = shape.speed.keys().find(|k| !e.columns.contains(k)) {
                        return Err(format!("{at}: column `{extra}` is not one of the table's"));
                    }
                }
            }
        }
        for m in &self.models {
            let at = format!("table 8, {} {} ({})", m.family, m.width, m.column);
            for (value, field) in
                [(m.gpu, "gpu"), (m.arm, "arm"), (m.mflops, "mflops"), (m.top1_error, "top1_error")]
            {
                check_speed(Some(value), &format!("{at}, {field}"))?;
            }
        }
        Ok(())
    }
}

/// The K of a column named `xK`.
fn multiplier(column: &str) -> Option<u32> {
    column.strip_prefix('x')?.parse().ok().filter(|&k| k > 0)
}

/// A published number must be there, finite and positive.
fn check_speed(value: Option<f64>, at: &str) -> Result<(), String> {
    match value {
        None => Err(format!("{at}: missing")),
        Some(v) if !(v.is_finite() && v > 0.0) => Err(format!("{at}: {v} is not a positive number")),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paper() -> Paper {
        Paper::builtin().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn builtin_has_the_four_tables_with_the_papers_rows() {
        let p = paper();
        let shape: Vec<(u32, &str, usize)> =
            p.experiments.iter().map(|e| (e.table, e.guideline.as_str(), e.rows.len())).collect();
        assert_eq!(shape, [(1, "G1", 4), (2, "G2", 4), (3, "G3", 5), (4, "G4", 4)]);
        for e in &p.experiments {
            assert_eq!(e.multipliers(), [1, 2, 4], "table {}", e.table);
        }
    }

    #[test]
    fn builtin_matches_spot_values_of_the_paper() {
        let p = paper();
        let speed = |table: usize, config: &str, platform: Platform, column: &str| {
            let e = &p.experiments[table - 1];
            e.rows[e.row(config).unwrap()].on(platform).speed[column]
        };
        assert_eq!(speed(1, "1:1", Platform::Gpu, "x1"), 1480.0);
        assert_eq!(speed(1, "1:12", Platform::Arm, "x4"), 4.4);
        assert_eq!(speed(2, "8", Platform::Gpu, "x2"), 445.0);
        assert_eq!(speed(3, "4-fragment-series", Platform::Gpu, "x1"), 752.0);
        assert_eq!(speed(3, "2-fragment-parallel", Platform::Arm, "x2"), 9.1);
        assert_eq!(speed(4, "no, no", Platform::Arm, "x1"), 66.3);
        let t1 = &p.experiments[0];
        assert_eq!(t1.rows[t1.row("1:6").unwrap()].arm.channels, [13, 78]);
        let cell = |family: &str, column: &str| {
            p.models.iter().find(|m| m.family == family && m.column == column).unwrap()
        };
        let v2 = cell("ShuffleNet v2", "~140M");
        assert_eq!((v2.top1_error, v2.gpu, v2.arm, v2.mflops), (30.6, 341.0, 24.4, 146.0));
        assert_eq!(cell("MobileNet v2", "~500M+").arm, 5.4);
        assert_eq!(cell("IGCV3-D", "~300M").gpu, 102.0);
        assert_eq!(p.models.iter().filter(|m| m.column == "~40M").count(), 7);
    }

    #[test]
    fn table_8_networks_are_in_the_four_figure_1_families() {
        let paper = paper();
        let measured: std::collections::BTreeSet<&str> =
            paper.models.iter().filter(|m| m.network.is_some()).map(|m| m.family.as_str()).collect();
        assert_eq!(
            measured.into_iter().collect::<Vec<_>>(),
            ["MobileNet v1", "MobileNet v2", "ShuffleNet v1 (g=3)", "ShuffleNet v2"]
        );
    }

    /// The built-in text with one substring replaced.
    fn edited(from: &str, to: &str) -> String {
        assert!(BUILTIN.contains(from), "{from}");
        BUILTIN.replacen(from, to, 1)
    }

    #[test]
    fn bad_files_say_where_and_what() {
        let err = |text: &str| Paper::parse(text, "p.ron").unwrap_err().to_string();
        let syntax = err(&edited("table: 1,", "table: one,"));
        assert!(syntax.starts_with("p.ron:23:") && syntax.contains("integer"), "{syntax}");
        let missing = err(&edited(r#""x1": 1480, "#, ""));
        assert!(missing.contains("table 1, row `1:1`, gpu, column x1: missing"), "{missing}");
        let negative = err(&edited(r#""x4": 5.3"#, r#""x4": -5.3"#));
        assert!(negative.contains("-5.3 is not a positive number"), "{negative}");
        let channels = err(&edited("channels: [128, 128]", "channels: [128]"));
        assert!(channels.contains("2 positive channel counts expected"), "{channels}");
        let favored = err(&edited(r#"favored: "1:1""#, r#"favored: "1:3""#));
        assert!(favored.contains("table 1: no row `1:3`"), "{favored}");
        let column = err(&edited(r#"columns: ["x1", "x2", "x4"]"#, r#"columns: ["x1", "x2", "4x"]"#));
        assert!(column.contains("column `4x` is not `xK`"), "{column}");
    }
}
