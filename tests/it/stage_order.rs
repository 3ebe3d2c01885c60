//! Stage tables list the stages in pipeline order (from the entry, breadth first), not by name:
//! `seda run`'s table, its JSON's `stage_order`, and `seda report`'s table of the record.

use serde_json::{json, Value};

/// A pipeline whose stages' names sort in another order than the one requests take:
/// zulu -> (mike | alpha) -> kilo, where mike and alpha both go to kilo.
fn config() -> Value {
    json!({
        "name": "order",
        "source": { "kind": "generator", "requests": 200, "entry": "zulu" },
        "stages": {
            "alpha": { "kind": "noop", "next": "kilo" },
            "kilo": { "kind": "respond" },
            "mike": { "kind": "noop", "next": "kilo" },
            "zulu": { "kind": "route", "params": { "weights": { "a": 1, "b": 1 } }, "next": { "a": "mike", "b": "alpha" } }
        }
    })
}

/// The first word of each line of the table's rows that name a stage.
fn stage_rows(table: &str, stages: &[&str]) -> Vec<String> {
    table
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|word| stages.contains(word))
        .map(str::to_string)
        .collect()
}

#[test]
fn stage_tables_list_stages_in_pipeline_order() {
    let dir = std::env::temp_dir().join(format!("seda-it-stage-order-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (file, json, record) = (dir.join("order.json"), dir.join("summary.json"), dir.join("record"));
    std::fs::write(&file, config().to_string()).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_seda"))
        .arg("run")
        .arg(&file)
        .arg("--json")
        .arg(&json)
        .arg("--record")
        .arg(&record)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stages = ["zulu", "mike", "alpha", "kilo"];
    let table = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stage_rows(&table, &stages), stages, "{table}");
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(summary["stage_order"], json!(stages));

    let report = std::process::Command::new(env!("CARGO_BIN_EXE_seda")).arg("report").arg(&record).output().unwrap();
    assert!(report.status.success(), "{}", String::from_utf8_lossy(&report.stderr));
    let table = String::from_utf8(report.stdout).unwrap();
    let rows = stage_rows(&table, &stages);
    let mut once = rows.clone();
    once.dedup();
    assert_eq!(once, stages, "{table}");
    std::fs::remove_dir_all(&dir).unwrap();
}
