//! `peers pool`: the rounds of several `peers matrix --json` runs taken together, cell by
//! cell. On a machine whose rounds move by 10-25%, the two or three rounds of one run cannot
//! tell a tie from a gap of a few percent; twenty rounds can.
//!
//! For each of Sockeye's servers and each peer, every round gives the ratio of their echo
//! rates (both measured in that round, minutes apart at most). The pooled figure is the
//! geometric mean of those ratios, with an approximate 95% interval: the mean of the
//! logarithms ± 2 standard errors. The same is given against each round's best peer, the
//! comparison of the matrix's table: it is biased below 1 when the peers are level with
//! each other, since the best of three noisy figures is above their common mean.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;

use crate::matrix::{Cell, rate_ratio, ratio_text};
use crate::servers::Server;

/// The arguments of `peers pool`.
#[derive(Debug, clap::Args)]
pub(crate) struct PoolArgs {
    /// JSON files written by `peers matrix --json`
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// One cell's rounds: in each, every server's echo rate.
type Rounds = Vec<BTreeMap<String, f64>>;

pub(crate) fn run(args: PoolArgs) -> ExitCode {
    let mut cells: Vec<(Cell, Rounds)> = Vec::new();
    for path in &args.files {
        if let Err(error) = read_run(path).and_then(|json| add_run(&mut cells, &json)) {
            eprintln!("peers: {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
    }
    print!("{}", table(&cells, args.files.len()));
    ExitCode::SUCCESS
}

/// One run's JSON, read from `path`.
fn read_run(path: &std::path::Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))
}

/// Appends the rounds of one run to `cells`, by connections and size. A round counts when
/// every server of the run has a sample in it.
fn add_run(cells: &mut Vec<(Cell, Rounds)>, json: &serde_json::Value) -> Result<(), String> {
    let run_cells = json
        .get("cells")
        .and_then(serde_json::Value::as_array)
        .ok_or("no \"cells\": not the output of `peers matrix --json`")?;
    for cell in run_cells {
        let connections = cell
            .get("connections")
            .and_then(serde_json::Value::as_u64)
            .and_then(|c| u32::try_from(c).ok());
        let size = cell.get("size").and_then(serde_json::Value::as_str);
        let results = cell.get("results").and_then(serde_json::Value::as_object);
        let (Some(connections), Some(size), Some(results)) = (connections, size, results) else {
            return Err("a cell without connections, size or results".into());
        };
        let rates: BTreeMap<&str, Vec<f64>> = results
            .iter()
            .map(|(server, samples)| {
                let rates = samples
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| s.get("msgs_per_s").and_then(serde_json::Value::as_f64))
                    .collect::<Option<Vec<f64>>>()
                    .ok_or_else(|| format!("a sample of {server} without msgs_per_s"))?;
                Ok((server.as_str(), rates))
            })
            .collect::<Result<_, String>>()?;
        let rounds = rates.values().map(Vec::len).min().unwrap_or(0);
        let key = Cell {
            connections,
            size: size.to_owned(),
        };
        let index = match cells.iter().position(|(k, _)| *k == key) {
            Some(index) => index,
            None => {
                cells.push((key, Vec::new()));
                cells.len() - 1
            }
        };
        for round in 0..rounds {
            let per_server = rates
                .iter()
                .map(|(server, rates)| ((*server).to_owned(), rates[round]))
                .collect();
            cells[index].1.push(per_server);
        }
    }
    Ok(())
}

/// The geometric mean of `ratios` and its approximate 95% interval (± 2 standard errors of
/// the logarithms; none from a single ratio). `None` when there is no positive ratio.
fn pooled(ratios: &[f64]) -> Option<(f64, Option<(f64, f64)>)> {
    let logs: Vec<f64> = ratios
        .iter()
        .filter(|r| **r > 0.0)
        .map(|r| r.ln())
        .collect();
    if logs.is_empty() {
        return None;
    }
    let n = logs.len() as f64;
    let mean = logs.iter().sum::<f64>() / n;
    if logs.len() < 2 {
        return Some((mean.exp(), None));
    }
    let variance = logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let half = 2.0 * (variance / n).sqrt();
    Some((mean.exp(), Some(((mean - half).exp(), (mean + half).exp()))))
}

fn entry(ratios: &[f64]) -> String {
    match pooled(ratios) {
        Some((mean, Some((low, high)))) => format!(
            "{} ({}-{})",
            ratio_text(mean, 3),
            ratio_text(low, 2),
            ratio_text(high, 2)
        ),
        Some((mean, None)) => ratio_text(mean, 3),
        None => "n/a".to_string(),
    }
}

fn is_ours(name: &str) -> bool {
    Server::from_str(name, false).is_ok_and(Server::is_ours)
}

/// The Markdown tables: one per server of Sockeye's, a row per cell.
fn table(cells: &[(Cell, Rounds)], files: usize) -> String {
    let mut names: Vec<&str> = cells
        .iter()
        .flat_map(|(_, rounds)| rounds.iter().flat_map(|r| r.keys().map(String::as_str)))
        .collect();
    names.sort_unstable();
    names.dedup();
    let (ours, peers): (Vec<&str>, Vec<&str>) = names.into_iter().partition(|n| is_ours(n));
    let mut out = String::new();
    for us in &ours {
        let _ = writeln!(
            out,
            "\n{us}: echo rate over each peer's, pooled over the rounds of {files} run(s): \
             geometric mean of the rounds' ratios (approximate 95% interval)\n"
        );
        let _ = write!(out, "| load | rounds |");
        for peer in &peers {
            let _ = write!(out, " / {peer} |");
        }
        let _ = writeln!(out, " / the round's best peer |");
        let _ = writeln!(out, "|---|---:|{}---:|", "---:|".repeat(peers.len()));
        for (cell, rounds) in cells {
            let with_us: Vec<&BTreeMap<String, f64>> =
                rounds.iter().filter(|r| r.contains_key(*us)).collect();
            let _ = write!(out, "| {} | {} |", cell.label(), with_us.len());
            for peer in &peers {
                let ratios: Vec<f64> = with_us
                    .iter()
                    .filter_map(|r| Some(r[*us] / r.get(*peer)?))
                    .collect();
                let _ = write!(out, " {} |", entry(&ratios));
            }
            let best: Vec<f64> = with_us
                .iter()
                .filter_map(|r| {
                    let peers: Vec<f64> = peers.iter().filter_map(|p| r.get(*p)).copied().collect();
                    rate_ratio(r[*us], &peers)
                })
                .collect();
            let _ = writeln!(out, " {} |", entry(&best));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(cells: serde_json::Value) -> serde_json::Value {
        serde_json::json!({ "rounds": 2, "cells": cells })
    }

    fn rates(rates: &[f64]) -> serde_json::Value {
        rates
            .iter()
            .map(|r| serde_json::json!({ "msgs_per_s": r }))
            .collect()
    }

    #[test]
    fn the_pooled_ratio_is_the_geometric_mean_with_its_interval() {
        let (mean, interval) = pooled(&[2.0, 0.5]).unwrap();
        assert!((mean - 1.0).abs() < 1e-12, "{mean}");
        let (low, high) = interval.unwrap();
        // logs ±ln 2: standard deviation ln 2 · √2, standard error ln 2, ± 2 of them.
        assert!(
            (low - 0.25).abs() < 1e-12 && (high - 4.0).abs() < 1e-12,
            "{low} {high}"
        );
        assert_eq!(pooled(&[1.1]), Some((1.1f64.ln().exp(), None)));
        assert_eq!(pooled(&[]), None);
        assert_eq!(entry(&[1.0, 1.0, 1.0]), "1.000 (1.00-1.00)");
    }

    #[test]
    fn rounds_of_several_runs_are_pooled_by_cell_and_paired_within_a_round() {
        let mut cells = Vec::new();
        let first = run(serde_json::json!([{
            "connections": 10, "size": "1KiB",
            "results": {
                "sockeye": rates(&[110.0, 90.0]),
                "fastwebsockets": rates(&[100.0, 100.0]),
                "tokio-websockets": rates(&[100.0, 75.0]),
            }
        }]));
        // The second run has a third round for one server only: it is not paired.
        let second = run(serde_json::json!([{
            "connections": 10, "size": "1KiB",
            "results": {
                "sockeye": rates(&[100.0, 1.0]),
                "fastwebsockets": rates(&[100.0]),
                "tokio-websockets": rates(&[125.0]),
            }
        }, {
            "connections": 100, "size": "20B",
            "results": { "sockeye": rates(&[5.0]), "fastwebsockets": rates(&[4.0]) }
        }]));
        add_run(&mut cells, &first).unwrap();
        add_run(&mut cells, &second).unwrap();
        assert_eq!(cells.len(), 2);
        assert_eq!(cells[0].1.len(), 3, "two rounds, then one");
        assert_eq!(cells[0].1[2]["tokio-websockets"], 125.0);
        let out = table(&cells, 2);
        // Against fastwebsockets: 1.1, 0.9, 1.0; against each round's best: 1.1, 0.9, 0.8.
        let fws = entry(&[1.1, 0.9, 1.0]);
        let best = entry(&[1.1, 0.9, 0.8]);
        assert!(out.contains(&format!("| 10 × 1KiB | 3 | {fws} |")), "{out}");
        assert!(out.contains(&format!(" | {best} |\n")), "{out}");
        assert!(
            out.contains("| 100 × 20 B | 1 | 1.250 | n/a | 1.250 |"),
            "{out}"
        );
        assert!(
            out.contains("| / fastwebsockets | / tokio-websockets |"),
            "{out}"
        );
        assert!(!out.contains("/ sockeye |"), "ours are not peers: {out}");
    }

    /// The repository's root, where the kept runs and the documents are.
    fn repository() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// The kept runs: `benches/runs/*.json`.
    fn kept_runs() -> Vec<std::path::PathBuf> {
        let dir = repository().join("benches/runs");
        let mut runs: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "json"))
            .collect();
        runs.sort();
        assert!(!runs.is_empty(), "no runs in {}", dir.display());
        runs
    }

    /// The pooled report of `runs`, after checking that every file is read and pools into
    /// the matrix's six cells, five servers a round.
    fn report_of(runs: &[std::path::PathBuf]) -> String {
        let mut cells = Vec::new();
        for path in runs {
            add_run(&mut cells, &read_run(path).unwrap()).unwrap();
        }
        assert_eq!(cells.len(), 6, "the six cells of the matrix");
        for (cell, rounds) in &cells {
            assert!(
                rounds.len() >= runs.len(),
                "{cell:?}: {} rounds",
                rounds.len()
            );
            assert!(
                rounds.iter().all(|r| r.len() == 5),
                "{cell:?}: five servers a round"
            );
        }
        table(&cells, runs.len())
    }

    /// The pooled report of all the kept runs.
    fn kept_runs_report() -> String {
        report_of(&kept_runs())
    }

    /// The first Markdown table in `text`: its header, rule and rows.
    fn first_table(text: &str) -> Vec<&str> {
        text.lines()
            .skip_while(|line| !line.starts_with('|'))
            .take_while(|line| line.starts_with('|'))
            .collect()
    }

    /// The table of one of Sockeye's servers in `report`: its header, rule and rows.
    fn server_table<'a>(report: &'a str, server: &str) -> Vec<&'a str> {
        let (_, rest) = report
            .split_once(&format!("\n{server}: echo rate"))
            .unwrap_or_else(|| panic!("no table of {server}:\n{report}"));
        first_table(rest)
    }

    /// The rows of a table (header and rule left out), each split into its cells.
    fn rows<'a>(table: &[&'a str]) -> Vec<Vec<&'a str>> {
        let rows: Vec<Vec<&str>> = table[2..]
            .iter()
            .map(|line| line.split('|').map(str::trim).collect())
            .collect();
        assert_eq!(rows.len(), 6, "{table:?}");
        rows
    }

    /// A column's point estimates: "0.972 (0.95-1.00)" gives "0.972".
    fn points<'a>(rows: &[Vec<&'a str>], column: usize) -> Vec<&'a str> {
        rows.iter()
            .map(|row| row[column].split_once(' ').map_or(row[column], |(p, _)| p))
            .collect()
    }

    /// The lowest and highest of `points`.
    fn range(points: &[&str]) -> (f64, f64) {
        let values = points.iter().map(|p| p.parse::<f64>().unwrap());
        values.fold((f64::INFINITY, 0.0), |(low, high), v| {
            (low.min(v), high.max(v))
        })
    }

    /// A document of the repository with its whitespace runs made single spaces, so that
    /// a figure is found wherever the lines break.
    fn prose(path: &str) -> String {
        let text = std::fs::read_to_string(repository().join(path)).unwrap();
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// The pooled section of docs/performance.md.
    fn docs_pooled_section() -> String {
        let docs = std::fs::read_to_string(repository().join("docs/performance.md")).unwrap();
        docs.split_once("### Pooled over runs")
            .expect("docs/performance.md has its pooled section")
            .1
            .to_owned()
    }

    #[test]
    fn the_kept_runs_pool_into_every_cell_and_into_the_docs_table() {
        let report = kept_runs_report();
        // docs/performance.md's pooled table is what the kept runs give, figure for figure.
        let section = docs_pooled_section();
        let documented = first_table(&section);
        assert_eq!(documented.len(), 8, "a header, a rule and six cells");
        assert_eq!(
            documented,
            server_table(&report, "sockeye"),
            "docs/performance.md's pooled table is not what the kept runs give:\n{report}"
        );
    }

    #[test]
    fn the_docs_endpoint_line_is_what_the_kept_runs_give() {
        let report = kept_runs_report();
        let rows = rows(&server_table(&report, "sockeye-endpoint"));
        let (lowest, highest) = range(&points(&rows, 5));
        let expected = format!(
            "Endpoint mode: / fastwebsockets {}; / tokio-websockets {}; / tungstenite \
             {lowest:.2}-{highest:.2}; / the round's best peer {}.",
            points(&rows, 3).join(", "),
            points(&rows, 4).join(", "),
            points(&rows, 6).join(", "),
        );
        let section = docs_pooled_section();
        let section = section.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            section.contains(&expected),
            "docs/performance.md's endpoint line is not what the kept runs give: {expected}"
        );
    }

    /// "a, b, c and d".
    fn listed(items: &[&str]) -> String {
        match items.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
            _ => items.join(""),
        }
    }

    #[test]
    fn the_latest_figures_pool_of_the_latest_host_is_what_its_runs_give() {
        // "Latest figures" pools the runs on the latest runs' host with the one command it
        // quotes, and gives the WebSocket mode's ratio to each leading peer and the range
        // against each round's best peer.
        let docs = std::fs::read_to_string(repository().join("docs/performance.md")).unwrap();
        let (_, latest) = docs
            .split_once("## Latest figures")
            .expect("docs/performance.md has its latest figures");
        let (latest, _) = latest
            .split_once("### Pooled over runs")
            .expect("and a pooled section after them");
        let latest = latest.split_whitespace().collect::<Vec<_>>().join(" ");
        let (_, command) = latest
            .split_once("`target/release/peers pool ")
            .expect("the latest figures quote the command that pools this host's runs");
        let (files, after) = command.split_once('`').expect("the command's end");
        let runs: Vec<std::path::PathBuf> = files
            .split_whitespace()
            .map(|file| repository().join(file))
            .collect();
        assert!(runs.len() >= 2, "{runs:?}");
        let report = report_of(&runs);
        let rows = rows(&server_table(&report, "sockeye"));
        let expected = format!(
            "the WebSocket mode is at {} of fastwebsockets' rate and {} of tokio-websockets'",
            listed(&points(&rows, 3)),
            listed(&points(&rows, 4)),
        );
        assert!(
            after.contains(&expected),
            "the latest figures do not say {expected:?}:\n{report}"
        );
        let best = points(&rows, 6);
        let by_value = |a: &&&str, b: &&&str| {
            a.parse::<f64>()
                .unwrap()
                .total_cmp(&b.parse::<f64>().unwrap())
        };
        let (low, high) = (
            best.iter().min_by(by_value).unwrap(),
            best.iter().max_by(by_value).unwrap(),
        );
        let expected = format!("Against each round's best peer it is at {low}-{high} there");
        assert!(
            after.contains(&expected),
            "the latest figures do not say {expected:?}:\n{report}"
        );
    }

    #[test]
    fn the_docs_table_of_the_runs_against_one_peer_version_is_what_those_runs_give() {
        // The docs name the runs against tokio-websockets 0.13.3 in the command that pools
        // them, and show that command's table of the WebSocket mode under it.
        let section = docs_pooled_section();
        let (_, rest) = section
            .split_once("\ntarget/release/peers pool benches/runs/")
            .expect("docs/performance.md pools the runs against one peer version");
        let (files, below) = rest.split_once('\n').expect("the command's line");
        let runs: Vec<std::path::PathBuf> = format!("benches/runs/{files}")
            .split_whitespace()
            .map(|file| repository().join(file))
            .collect();
        let kept = kept_runs();
        assert!(runs.len() >= 2, "{runs:?}");
        assert!(
            runs.iter()
                .all(|run| kept.iter().any(|k| k.ends_with(run.file_name().unwrap()))),
            "only kept runs: {runs:?}"
        );
        assert!(runs.len() < kept.len(), "a part of the kept runs");
        // The runs that record the peers' versions (those made since the runner writes
        // them) must be in the command exactly when they measured the version it names.
        let section_prose = section.split_whitespace().collect::<Vec<_>>().join(" ");
        let (_, named_version) = section_prose
            .split_once("runs against tokio-websockets ")
            .expect("docs/performance.md names the version");
        let version = named_version.split_whitespace().next().unwrap_or_default();
        assert!(
            !version.is_empty() && version.chars().all(|c| c.is_ascii_digit() || c == '.'),
            "a version: {version:?}"
        );
        for run in &kept {
            let json = read_run(run).unwrap();
            if let Some(recorded) = json["peer_versions"]["tokio-websockets"].as_str() {
                let named = runs.iter().any(|r| r.file_name() == run.file_name());
                assert_eq!(
                    named,
                    recorded == version,
                    "{}: tokio-websockets {recorded}, named: {named}",
                    run.display()
                );
            }
        }
        let report = report_of(&runs);
        let documented = first_table(below);
        assert_eq!(documented.len(), 8, "a header, a rule and six cells");
        assert_eq!(
            documented,
            server_table(&report, "sockeye"),
            "docs/performance.md's table of the runs against one peer version is not what \
             they give:\n{report}"
        );
    }

    #[test]
    fn the_readme_rounds_the_kept_runs_pooled_figures() {
        let report = kept_runs_report();
        let rows = rows(&server_table(&report, "sockeye"));
        let readme = prose("README.md");
        let between = |after: &str, before: &str| -> String {
            let rest = readme
                .split_once(after)
                .unwrap_or_else(|| panic!("the README says {after:?}"))
                .1;
            rest.split_once(before).expect("its end").0.to_owned()
        };
        // Two places, against the report's three.
        let close = |said: &str, pooled: f64| {
            let said: f64 = said.parse().unwrap();
            assert!(
                (said - pooled).abs() <= 0.0051,
                "the README says {said} where the kept runs give {pooled:.3}"
            );
        };
        let point =
            |row: usize, column: usize| -> f64 { points(&rows, column)[row].parse().unwrap() };
        assert!(
            readme.contains(&format!("Pooled over the {} rounds", rows[0][2])),
            "the README's count of pooled rounds"
        );
        let large = between("ahead of both on 1 MiB messages (", ")");
        let (over_fast, over_tokio) = large.split_once(" and ").expect("two figures");
        close(over_fast, point(5, 3));
        close(over_tokio, point(5, 4));
        close(
            &between("below tokio-websockets on 200 × 16 KiB (", " of its rate"),
            point(3, 4),
        );
        let (lowest, highest) = range(&points(&rows, 5));
        let said = between("ahead of tokio-tungstenite on every load (", ")");
        let (low, high) = said.split_once('-').expect("a range");
        close(low, lowest);
        close(high, highest);
    }

    /// docs/performance-history.md's table of every full run: the runs as its header names
    /// them (oldest first), and for each load the WebSocket mode's ratios to the best peer
    /// and the endpoint mode's, as written.
    struct History {
        runs: Vec<String>,
        loads: Vec<Load>,
    }

    /// One load's row of that table.
    struct Load {
        /// The WebSocket mode's ratios.
        ours: Vec<String>,
        /// The endpoint mode's.
        endpoint: Vec<String>,
    }

    fn history() -> History {
        let text =
            std::fs::read_to_string(repository().join("docs/performance-history.md")).unwrap();
        let table: Vec<Vec<&str>> = text
            .lines()
            .skip_while(|line| !line.starts_with("| load | rate ratio: "))
            .take_while(|line| line.starts_with('|'))
            .map(|line| line.split('|').map(str::trim).collect())
            .collect();
        assert_eq!(table.len(), 8, "a header, a rule and six loads: {table:?}");
        // "", "load", the runs, the endpoint mode's column, "".
        let header = &table[0];
        let columns = header.len();
        let runs: Vec<String> = header[2..columns - 2]
            .iter()
            .map(|run| run.trim_start_matches("rate ratio: ").to_owned())
            .collect();
        let loads = table[2..]
            .iter()
            .map(|row| {
                assert_eq!(row.len(), columns, "{row:?}");
                let endpoint: Vec<String> =
                    row[columns - 2].split(" / ").map(str::to_owned).collect();
                assert_eq!(endpoint.len(), runs.len(), "{}: the endpoint mode", row[1]);
                let ours = row[2..columns - 2]
                    .iter()
                    .map(|r| (*r).to_owned())
                    .collect();
                Load { ours, endpoint }
            })
            .collect();
        History { runs, loads }
    }

    /// A kept run's rate entries, cell by cell, for one of Sockeye's servers, as the
    /// runner's table printed them: "0.97 (0.81-1.07)".
    fn rate_entries(run: &serde_json::Value, ours: &str) -> Vec<String> {
        run["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|cell| {
                let entries =
                    crate::matrix::kept_rate_entries(cell["results"].as_object().unwrap());
                let (_, entry) = entries
                    .into_iter()
                    .find(|(server, _)| server == ours)
                    .unwrap();
                entry
            })
            .collect()
    }

    /// The ratio of the means alone, without the rounds' range: "0.97 (0.81-1.07)" gives
    /// "0.97".
    fn of_means(entries: &[String]) -> Vec<String> {
        entries
            .iter()
            .map(|e| e.split_once(' ').map_or(e.as_str(), |(m, _)| m).to_owned())
            .collect()
    }

    /// "twenty-nine" for 29: how the documents write a count of runs (1 to 99).
    fn number_word(n: usize) -> String {
        const UNITS: [&str; 20] = [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
        ];
        const TENS: [&str; 10] = [
            "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
        ];
        match n {
            0..20 => UNITS[n].to_owned(),
            _ if n.is_multiple_of(10) => TENS[n / 10].to_owned(),
            _ => format!("{}-{}", TENS[n / 10], UNITS[n % 10]),
        }
    }

    #[test]
    fn numbers_are_written_as_the_documents_write_them() {
        assert_eq!(number_word(7), "seven");
        assert_eq!(number_word(29), "twenty-nine");
        assert_eq!(number_word(30), "thirty");
        assert_eq!(number_word(33), "thirty-three");
    }

    /// The rate entries of the table of the run `commit` in `text`, where the text has one
    /// (the run's section, which says "Every figure is in `benches/runs/COMMIT.json`" and
    /// shows the runner's tables after it): for the WebSocket and endpoint modes, load by
    /// load.
    fn own_table(text: &str, commit: &str) -> Option<(Vec<String>, Vec<String>)> {
        let (_, section) =
            text.split_once(&format!("figure is in `benches/runs/{commit}.json`"))?;
        let table = first_table(section);
        let header: Vec<&str> = table[0].split('|').map(str::trim).collect();
        let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let (ours, endpoint) = (
            column("sockeye / best peer"),
            column("sockeye-endpoint / best peer"),
        );
        let rows = rows(&table);
        Some((
            rows.iter().map(|r| r[ours].to_owned()).collect(),
            rows.iter().map(|r| r[endpoint].to_owned()).collect(),
        ))
    }

    #[test]
    fn the_run_history_gives_each_kept_run_as_its_file_does() {
        let history = history();
        let past =
            std::fs::read_to_string(repository().join("docs/performance-history.md")).unwrap();
        let page = std::fs::read_to_string(repository().join("docs/performance.md")).unwrap();
        let mut tables = 0;
        for path in kept_runs() {
            let commit = path.file_stem().unwrap().to_str().unwrap().to_owned();
            let run = read_run(&path).unwrap();
            let ours = rate_entries(&run, "sockeye");
            let endpoint = rate_entries(&run, "sockeye-endpoint");
            // The table of every run: the ratios of the means.
            let column = history
                .runs
                .iter()
                .position(|run| *run == format!("`{commit}`"))
                .unwrap_or_else(|| panic!("the run history has no column for {commit}"));
            let column_of = |pick: fn(&Load) -> &Vec<String>| {
                history
                    .loads
                    .iter()
                    .map(|load| pick(load)[column].clone())
                    .collect::<Vec<String>>()
            };
            assert_eq!(
                column_of(|load| &load.ours),
                of_means(&ours),
                "the run history's column for {commit} is not what its file gives"
            );
            assert_eq!(
                column_of(|load| &load.endpoint),
                of_means(&endpoint),
                "the run history's endpoint figures for {commit} are not what its file gives"
            );
            // The run's own table, where the documents keep one: in its section of the
            // run history, or as the performance page's latest.
            let own = own_table(&past, &commit).or_else(|| own_table(&page, &commit));
            if let Some(own) = own {
                tables += 1;
                assert_eq!(
                    own,
                    (ours, endpoint),
                    "the table of the run at {commit} is not what its file gives"
                );
            }
        }
        assert!(tables >= 10, "the kept runs' own tables: {tables}");
    }

    #[test]
    fn the_documents_ranges_and_counts_of_runs_are_the_run_history_s() {
        let History { runs, loads } = history();
        let count = number_word(runs.len());
        let capitalised = format!("{}{}", count[..1].to_uppercase(), &count[1..]);
        let docs = prose("docs/performance.md");
        let past = prose("docs/performance-history.md");
        let readme = prose("README.md");
        for (document, text, said) in [
            (
                "docs/performance.md",
                &docs,
                format!("{capitalised} full runs are on record"),
            ),
            (
                "docs/performance.md",
                &docs,
                format!("the closest of the {count} runs"),
            ),
            (
                "the run history",
                &past,
                format!("{capitalised} full runs, for the spread"),
            ),
            (
                "the run history",
                &past,
                format!("endpoint mode, the same {count} |"),
            ),
        ] {
            assert!(text.contains(&said), "{document} does not say {said:?}");
        }
        // The latest runs the ranges are over: as many as docs/performance.md says.
        let window = docs
            .split_once("Over the last ")
            .and_then(|(_, rest)| rest.split_once(','))
            .expect("docs/performance.md gives the ranges over the latest runs")
            .0;
        let latest = (1..=runs.len())
            .find(|&n| number_word(n) == window)
            .unwrap_or_else(|| panic!("{window:?} is not a count of the {} runs", runs.len()));
        // The latest runs' ratios of one load, as written.
        fn last(ratios: &[String], latest: usize) -> Vec<&str> {
            ratios[ratios.len() - latest..]
                .iter()
                .map(String::as_str)
                .collect()
        }
        let latest_of = |ratios| last(ratios, latest);
        // "low-high", printed as the runner prints a range.
        let span = |points: &[&str]| {
            let (low, high) = range(points);
            format!("{}-{}", ratio_text(low, 2), ratio_text(high, 2))
        };
        let cells: Vec<String> = loads
            .iter()
            .map(|load| span(&latest_of(&load.ours)))
            .collect();
        let said = format!(
            "Over the last {window}, Sockeye's WebSocket mode is at {} of the best peer on \
             20 B, {} on 1 KiB, {} on 10 × 16 KiB, {} and {} on 200 and 500 × 16 KiB, and {} \
             on 1 MiB;",
            cells[0], cells[1], cells[2], cells[3], cells[4], cells[5]
        );
        assert!(
            docs.contains(&said),
            "docs/performance.md does not say {said:?}"
        );
        let all = |pick: fn(&Load) -> &Vec<String>| {
            span(
                &loads
                    .iter()
                    .flat_map(|l| latest_of(pick(l)))
                    .collect::<Vec<_>>(),
            )
        };
        let said = format!(
            "Over the {window} latest full runs on a 2-core machine, Sockeye's echo rate per \
             load is {} of the best peer's (the endpoint mode {})",
            all(|load| &load.ours),
            all(|load| &load.endpoint)
        );
        assert!(readme.contains(&said), "the README does not say {said:?}");
        // And what the documents say of them: every cell has been above 1.0 in some of the
        // latest runs and below it in others, in either mode; and which runs, if any, had
        // every cell at 1.0 or more (a ratio printed below 1 is below it: the runner never
        // rounds one up to "1.00").
        for load in &loads {
            for ratios in [&load.ours, &load.endpoint] {
                let (low, high) = range(&latest_of(ratios));
                assert!(
                    low < 1.0 && high > 1.0,
                    "a cell on one side of 1.0 in every latest run: {ratios:?}"
                );
            }
        }
        assert!(docs.contains("every cell has been above 1.0 in some runs and below it in others"));
        let all_six: Vec<&str> = runs
            .iter()
            .enumerate()
            .filter(|&(i, _)| {
                loads
                    .iter()
                    .all(|load| load.ours[i].parse::<f64>().unwrap() >= 1.0)
            })
            .map(|(_, run)| run.as_str())
            .collect();
        let said = match all_six.len() {
            0 => "no run has had all six at 1.0 or more".to_owned(),
            n => format!(
                "{} of the {count} runs had all six at 1.0 or more: {}",
                number_word(n),
                all_six.join(", ")
            ),
        };
        assert!(
            docs.contains(&said),
            "docs/performance.md does not say {said:?}"
        );
    }

    #[test]
    fn a_file_that_is_not_a_matrix_run_is_refused() {
        let mut cells = Vec::new();
        assert!(add_run(&mut cells, &serde_json::json!({ "url": "x" })).is_err());
        let no_rate = run(serde_json::json!([{
            "connections": 1, "size": "1B", "results": { "sockeye": [{}] }
        }]));
        let error = add_run(&mut cells, &no_rate).unwrap_err();
        assert!(error.contains("msgs_per_s"), "{error}");
    }
}
