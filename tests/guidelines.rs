//! `archc guidelines` end to end, made quick with small inputs, two blocks per guideline network
//! and one timed run: every table
//! cell and network reports its measured median beside the paper's values; bad flags exit 2.
//! Timings are never asserted, only that they are there.

mod common;
use common::archc;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn quick_json_reports_every_configuration_beside_the_paper() {
    let dir = tempfile::tempdir().unwrap();
    let out = archc(&[
        "guidelines",
        "--quick",
        "--json",
        "--runs",
        "1",
        "--resolution",
        "32",
        "--blocks",
        "2",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (json["mode"].as_str(), json["runs"].as_u64(), json["shapes"].as_str()),
        (Some("quick"), Some(1), Some("arm"))
    );
    let tables = json["tables"].as_array().unwrap();
    let rows: Vec<usize> = tables.iter().map(|t| t["rows"].as_array().unwrap().len()).collect();
    assert_eq!(rows, [4, 4, 5, 4]);
    let positive = |v: &serde_json::Value, key: &str| v[key].as_f64().is_some_and(|x| x > 0.0);
    for table in tables {
        for row in table["rows"].as_array().unwrap() {
            let cells = row["cells"].as_array().unwrap();
            assert_eq!(cells.len(), 3, "{row}");
            for cell in cells {
                for key in
                    ["median_ms", "images_per_s", "relative", "paper_gpu", "paper_arm", "paper_gpu_relative"]
                {
                    assert!(positive(cell, key), "{key} in {cell}");
                }
            }
        }
        assert!(["yes", "partly", "no"].contains(&table["verdict"]["holds"].as_str().unwrap()), "{table}");
        assert!(
            table["verdict"]["summary"].as_str().unwrap().starts_with(table["guideline"].as_str().unwrap())
        );
    }
    assert_eq!(tables[0]["rows"][0]["cells"][0]["paper_gpu"], 1480.0);
    assert_eq!(tables[1]["rows"][3]["cells"][0]["channels"], serde_json::json!([184]));
    let models = json["models"].as_array().unwrap();
    assert_eq!(models.len(), 4, "quick measures the ~140M networks");
    for m in models {
        for key in ["median_ms", "paper_mflops", "paper_gpu", "paper_arm"] {
            assert!(positive(m, key), "{key} in {m}");
        }
    }
    let svg = std::fs::read_to_string(dir.path().join("speed_vs_macs.svg")).unwrap();
    assert!(svg.contains("ShuffleNet v2"));
}

#[test]
fn cuda_and_bad_flags_exit_2() {
    let out = archc(&["guidelines", "--device", "cuda"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "error: --device cuda: the guideline experiments are timed on the CPU only so far \
         (`archc bench --device cuda` times one network on a GPU); measure with --device cpu\n"
    );
    for bad in [["--device", "tpu"], ["--threads", "0"], ["--shapes", "x"]] {
        let out = archc(&["guidelines", bad[0], bad[1]]);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", stderr(&out));
    }
    let out = archc(&["guidelines", "--zoo", "no/such/zoo", "--runs", "1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no/such/zoo/guidelines/g1_1to1.ron"), "{}", stderr(&out));
}
