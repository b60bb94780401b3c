//! `vchat bench` end to end: the real binary with a tiny configuration, its
//! JSON shape and sanity. Never asserts on speed: machines are shared and
//! noisy, and the figures belong in BENCHMARKS.md, not in a pass/fail.

mod common;

use serde_json::Value;

fn bench_json(args: &[&str]) -> Value {
    let out = common::vchat()
        .arg("bench")
        .args(args)
        .arg("--json")
        .output()
        .expect("run vchat bench");
    assert!(
        out.status.success(),
        "vchat bench {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
}

#[test]
fn bench_json_has_every_case_with_sane_figures() {
    let report = bench_json(&["--sizes", "160x120", "--frames", "30"]);
    let cases = report["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 3, "raw, jpeg and h264 by default: {report}");
    for case in cases {
        assert_eq!(case["size"], "160x120");
        let t = &case["throughput"];
        // The writer may have taken one more frame when the limit is noticed.
        assert!(t["frames_sent"].as_u64().unwrap() >= 30, "{case}");
        assert!(t["frames_decoded"].as_u64().unwrap() > 0, "{case}");
        assert!(t["fps"].as_f64().unwrap() > 0.0, "{case}");
        assert!(t["mb_per_s"].as_f64().unwrap() > 0.0, "{case}");
        let l = &case["latency"];
        assert!(l["frames_decoded"].as_u64().unwrap() > 0, "{case}");
        let (p50, p99) = (l["p50_ms"].as_f64().unwrap(), l["p99_ms"].as_f64().unwrap());
        assert!(p50 > 0.0 && p99 >= p50, "{case}");
    }
    let raw = &cases[0];
    assert_eq!(raw["codec"], "raw");
    assert!(raw["bare"]["mb_per_s"].as_f64().unwrap() > 0.0, "{raw}");
    // vchat and bare alternate in rounds of the same frame count; the ratio
    // is the median round's.
    let rounds = raw["rounds"].as_array().expect("rounds");
    assert_eq!(rounds.len(), 5, "{raw}");
    let mut ratios: Vec<f64> = rounds
        .iter()
        .map(|r| {
            let frames = r["frames"].as_u64().unwrap();
            assert!((5..=30).contains(&frames), "{r}");
            assert!(r["vchat_mb_per_s"].as_f64().unwrap() > 0.0, "{r}");
            r["ratio"].as_f64().unwrap()
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    assert_eq!(raw["ratio"].as_f64(), Some(ratios[2]), "{raw}");
    assert_eq!(raw["latency"]["samples"], raw["latency"]["frames_decoded"]);
    let jpeg = &cases[1];
    assert_eq!(jpeg["codec"], "jpeg");
    assert!(
        jpeg["bare"].is_null() && jpeg["rounds"].is_null() && jpeg["ratio"].is_null(),
        "{jpeg}"
    );
    assert_eq!(
        report["machine"]["cores"].as_u64().map(|n| n > 0),
        Some(true)
    );
}

#[test]
fn bench_table_is_the_default_output() {
    let out = common::vchat()
        .args([
            "bench", "--sizes", "160x120", "--codecs", "i420", "--frames", "10",
        ])
        .output()
        .expect("run vchat bench");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("vchat/bare"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("160x120") && l.contains("i420")),
        "{table}"
    );
}

#[test]
fn bench_refuses_bad_options() {
    let out = common::run(&["bench", "--frames", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--frames"));
}
